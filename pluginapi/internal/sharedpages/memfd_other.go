//go:build !linux

package sharedpages

import "os"

func memoryFile(string, int64) (*os.File, error) { return nil, ErrUnsupported }
