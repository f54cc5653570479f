//go:build !unix

package main

import "time"

// processCPU is not measured on this system: it reports 0.
func processCPU() (time.Duration, int64) { return 0, 0 }
