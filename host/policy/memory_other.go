//go:build !unix

package policy

import "github.com/tetratelabs/wazero/experimental"

// reserveMemory has no address space reservation to offer here: memories
// live in Go slices (sliceMemory).
func reserveMemory(uint64) experimental.LinearMemory { return nil }
