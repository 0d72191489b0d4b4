package azuresearch

import (
	"encoding/json"
	"fmt"
	"testing"
)

func BenchmarkParseResponse(b *testing.B) {
	var docs []map[string]any
	for i := range 50 {
		docs = append(docs, map[string]any{
			"@search.score": 0.5 + float64(i)/100, "@search.rerankerScore": 3.1 - float64(i)/20,
			"@search.captions": []map[string]any{{"text": "Hold the power button for 5 seconds until the light flashes blue.", "highlights": "Hold the<em> power button</em>"}},
			"chunk_id":         fmt.Sprintf("ka%03d_0", i), "parent_id": fmt.Sprintf("ka%03d", i), "articlepublicnumber": fmt.Sprintf("KA-%05d", i),
			"title": "Pair Pulse headphones with a second phone", "url": "https://support.contoso.com/kb/KA-01042",
			"chunk": "Hold the power button for 5 seconds until the light flashes blue, then pick Pulse in the phone's Bluetooth list. " +
				"If the headphones do not appear, reset them by holding both volume buttons.", "isinternal": false, "keywords": []string{"pairing", "bluetooth"},
		})
	}
	data, _ := json.Marshal(map[string]any{"@odata.count": 50, "value": docs})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := parseResponse(data)
		if err != nil || len(res) != 50 {
			b.Fatal(err)
		}
	}
}
