package mux

import (
	"math/bits"
	"sync"
)

// Receive chunks come from power-of-two size classes between minChunk and
// MaxFramePayload. Pools hold *[]byte so Put never allocates a slice header.
const (
	minChunkShift = 12 // 4 KiB: small frames are packed into shared chunks
	maxChunkShift = 16 // MaxFramePayload
	minChunk      = 1 << minChunkShift
)

var chunkPools [maxChunkShift - minChunkShift + 1]sync.Pool

// chunkClass returns the pool index of the smallest class holding n bytes.
func chunkClass(n int) int {
	if n <= minChunk {
		return 0
	}
	return bits.Len(uint(n-1)) - minChunkShift
}

// isClassSize reports whether n fills a chunk of its class exactly, in which
// case the read loop reads the payload straight into a fresh chunk.
func isClassSize(n int) bool {
	return n >= minChunk && n <= MaxFramePayload && n&(n-1) == 0
}

// getChunk returns a buffer of len n (cap = its class size).
func getChunk(n int) *[]byte {
	c := chunkClass(n)
	if p, ok := chunkPools[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(c+minChunkShift))
	return &b
}

func putChunk(p *[]byte) {
	c := cap(*p)
	if c < minChunk || c > MaxFramePayload || c&(c-1) != 0 {
		return // not ours; let the GC have it
	}
	*p = (*p)[:0]
	chunkPools[chunkClass(c)].Put(p)
}
