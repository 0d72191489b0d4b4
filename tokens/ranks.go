package tokens

import (
	"fmt"
	"hash/maphash"
	"math/bits"
)

// rankTable maps token bytes to merge ranks, read-only, in an open-
// addressing hash table that holds no pointers. The encodings have 100k
// and 200k tokens; as a map[string]int they are a few hundred thousand
// pointers the garbage collector scans on every cycle, which under load
// cost more than the counting itself. Here they are two flat slices the
// collector skips.
type rankTable struct {
	data  []byte   // every token's bytes, back to back
	slots []uint64 // 0: empty; else offset<<32 | length<<24 | rank+1
	mask  uint64
	seed  maphash.Seed
}

const (
	maxTokenLen  = 255       // 8 bits of length
	maxRankValue = 1<<24 - 2 // 24 bits of rank+1
)

func newRankTable(ranks map[string]int) (*rankTable, error) {
	n := uint64(1) << bits.Len64(uint64(2*len(ranks))) // load factor under 1/2
	t := &rankTable{slots: make([]uint64, n), mask: n - 1, seed: maphash.MakeSeed()}
	size := 0
	for tok := range ranks {
		size += len(tok)
	}
	if size >= 1<<32 {
		return nil, fmt.Errorf("tokens: %d bytes of tokens", size)
	}
	t.data = make([]byte, 0, size)
	for tok, r := range ranks {
		if len(tok) == 0 || len(tok) > maxTokenLen || r < 0 || r > maxRankValue {
			return nil, fmt.Errorf("tokens: token %q with rank %d does not fit the table", tok, r)
		}
		off := uint64(len(t.data))
		t.data = append(t.data, tok...)
		i := maphash.String(t.seed, tok) & t.mask
		for t.slots[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = off<<32 | uint64(len(tok))<<24 | uint64(r+1)
	}
	return t, nil
}

// get returns the rank of token p.
func (t *rankTable) get(p string) (int, bool) {
	for i := maphash.String(t.seed, p) & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if n := int(s >> 24 & 0xff); n == len(p) {
			off := int(s >> 32)
			if string(t.data[off:off+n]) == p {
				return int(s&0xffffff) - 1, true
			}
		}
	}
}

// len returns the number of tokens.
func (t *rankTable) len() int {
	n := 0
	for _, s := range t.slots {
		if s != 0 {
			n++
		}
	}
	return n
}
