package simulator

import "math/rand/v2"

// Identifiers and small random helpers. Every request gets its own PCG
// stream seeded with (handler seed, request sequence number), so no lock
// is shared between requests and a seeded handler is reproducible when
// requests arrive in a fixed order.

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newChatID returns "chatcmpl-" followed by 29 random alphanumerics, the
// shape of Azure's completion ids.
func newChatID(rng *rand.PCG) string {
	var b [9 + 29]byte
	copy(b[:], "chatcmpl-")
	for i := 9; i < len(b); {
		v := rng.Uint64()
		for j := 0; j < 10 && i < len(b); j++ {
			b[i] = idAlphabet[v%uint64(len(idAlphabet))]
			v /= uint64(len(idAlphabet))
			i++
		}
	}
	return string(b[:])
}

// newUUID returns a random RFC 4122 version-4 UUID string.
func newUUID(rng *rand.PCG) string {
	hi, lo := rng.Uint64(), rng.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // variant 10
	var b [36]byte
	pos := 0
	for i := 0; i < 32; i++ {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[pos] = '-'
			pos++
		}
		var nib uint64
		if i < 16 {
			nib = hi >> (60 - 4*i) & 0xf
		} else {
			nib = lo >> (60 - 4*(i-16)) & 0xf
		}
		b[pos] = hexDigits[nib]
		pos++
	}
	return string(b[:])
}

// float64From returns a uniform float in [0, 1).
func float64From(rng *rand.PCG) float64 {
	return float64(rng.Uint64()>>11) / (1 << 53)
}

// fnv64 is FNV-1a over s.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
