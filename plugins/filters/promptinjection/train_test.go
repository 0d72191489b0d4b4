package promptinjection

import (
	"bufio"
	"encoding/csv"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Training and evaluation data:
//   - dev: shared/data/prompt_injection_dev.csv beside the repository (prompt,type; benign or
//     jailbreak), found beside the repository (../../../../shared/data) or
//     at $GROUNDGATE_PI_DEV;
//   - cs: testdata/customer_service_benign.txt, in-domain benign messages;
//   - ctx: testdata/context_records.tsv, retrieved records, some injected.

var train = flag.Bool("train", false, "refit the weights and rewrite weights.go")

type example struct {
	src   string // dev, cs, ctx
	text  string
	label bool
	x     [numFeatures]float64
}

func devPath() string {
	if p := os.Getenv("GROUNDGATE_PI_DEV"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "..", "..", "shared", "data", "prompt_injection_dev.csv")
}

func loadExamples(t testing.TB) []example {
	t.Helper()
	var ex []example
	f, err := os.Open(devPath())
	if err != nil {
		t.Skipf("dev set not found: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows[1:] {
		ex = append(ex, example{src: "dev", text: r[0], label: r[1] == "jailbreak"})
	}
	for _, line := range readLines(t, "testdata/customer_service_benign.txt") {
		ex = append(ex, example{src: "cs", text: line})
	}
	for _, line := range readLines(t, "testdata/client_texts_benign.txt") {
		ex = append(ex, example{src: "roles", text: line})
	}
	for _, line := range readLines(t, "testdata/context_records.tsv") {
		label, text, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		ex = append(ex, example{src: "ctx", text: text, label: label == "1"})
	}
	for i := range ex {
		ex[i].x = Features(ex[i].text)
	}
	return ex
}

func readLines(t testing.TB, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// sampleWeight: the small in-domain sets count more, since a false
// positive on customer traffic costs most.
func sampleWeight(e *example) float64 {
	if e.src == "dev" {
		return 1
	}
	return 3
}

// floor is the least weight of a feature: signals the data hardly
// exercise (encoded payloads, invisible characters) get a hand-set prior
// so that they still count; every other weight is at least 0.
var floor = [numFeatures]float64{fBase64: 1.5, fInvisible: 1.0, cEncoded: 0.5}

// fit fits non-negative L2-regularised logistic regression by projected
// gradient descent (deterministic).
func fit(ex []example) ([numFeatures]float64, float64) {
	w := floor
	b := 0.0
	const (
		lambda = 1e-3
		iters  = 3000
		lr     = 0.5
	)
	var total float64
	for i := range ex {
		total += sampleWeight(&ex[i])
	}
	for it := 0; it < iters; it++ {
		var gw [numFeatures]float64
		gb := 0.0
		for i := range ex {
			e := &ex[i]
			p := score(&w, b, &e.x)
			y := 0.0
			if e.label {
				y = 1
			}
			d := (p - y) * sampleWeight(e) / total
			gb += d
			for k := range gw {
				gw[k] += d * e.x[k]
			}
		}
		b -= lr * gb
		for k := range w {
			w[k] -= lr * (gw[k] + lambda*w[k])
			w[k] = max(w[k], floor[k])
		}
	}
	return w, b
}

// threshold is the default threshold of the stage an example stands for.
func threshold(e *example) float64 {
	if e.src == "ctx" {
		return DefaultContextThreshold
	}
	return DefaultThreshold
}

type metrics struct{ tp, fp, tn, fn int }

func (m *metrics) add(pred, label bool) {
	switch {
	case pred && label:
		m.tp++
	case pred && !label:
		m.fp++
	case !pred && label:
		m.fn++
	default:
		m.tn++
	}
}

func (m metrics) precision() float64 { return ratio(m.tp, m.tp+m.fp) }
func (m metrics) recall() float64    { return ratio(m.tp, m.tp+m.fn) }
func (m metrics) fpr() float64       { return ratio(m.fp, m.fp+m.tn) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func (m metrics) String() string {
	return fmt.Sprintf("P=%.3f R=%.3f FPR=%.3f (tp=%d fp=%d tn=%d fn=%d)", m.precision(), m.recall(), m.fpr(), m.tp, m.fp, m.tn, m.fn)
}

func evaluate(ex []example, pred func(e *example) bool) map[string]*metrics {
	out := map[string]*metrics{"dev": {}, "cs": {}, "roles": {}, "ctx": {}}
	for i := range ex {
		out[ex[i].src].add(pred(&ex[i]), ex[i].label)
	}
	return out
}

// kfold returns held-out metrics: each example scored by a model fit
// without its fold.
func kfold(ex []example, k int) map[string]*metrics {
	idx := rand.New(rand.NewPCG(42, 42)).Perm(len(ex))
	fold := make([]int, len(ex))
	for i, j := range idx {
		fold[j] = i % k
	}
	held := make([]float64, len(ex))
	for f := 0; f < k; f++ {
		var tr []example
		for i := range ex {
			if fold[i] != f {
				tr = append(tr, ex[i])
			}
		}
		w, b := fit(tr)
		for i := range ex {
			if fold[i] == f {
				held[i] = score(&w, b, &ex[i].x)
			}
		}
	}
	pos := map[*example]int{}
	for i := range ex {
		pos[&ex[i]] = i
	}
	return evaluate(ex, func(e *example) bool { return held[pos[e]] >= threshold(e) })
}

// TestTrain refits the weights with -train and rewrites weights.go; it
// always reports 5-fold held-out figures.
func TestTrain(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ex := loadExamples(t)
	m := kfold(ex, 5)
	t.Logf("5-fold held-out (thresholds: input %.2f, context %.2f):\n dev: %v\n in-domain customer service: %v\n system, assistant and tool texts: %v\n context records: %v",
		DefaultThreshold, DefaultContextThreshold, m["dev"], m["cs"], m["roles"], m["ctx"])
	if !*train {
		return
	}
	w, b := fit(ex)
	var sb strings.Builder
	sb.WriteString("package promptinjection\n\n// Generated by TestTrain (go test -run TestTrain -train); see\n// train_test.go. Do not edit by hand.\n\n")
	fmt.Fprintf(&sb, "var bias = %.6f\n\nvar weights = [numFeatures]float64{\n", b)
	for i, v := range w {
		fmt.Fprintf(&sb, "\t%.6f, // %s\n", v, FeatureNames[i])
	}
	sb.WriteString("}\n")
	if err := os.WriteFile("weights.go", []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote weights.go:\n%s", sb.String())
}
