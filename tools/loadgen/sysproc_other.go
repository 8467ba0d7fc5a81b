//go:build !linux

package main

import "os/exec"

// setDeathSignal has no portable equivalent outside Linux; loadgen stops
// its children itself, and the no-op server also exits when its stdin
// closes. (Memory and CPU figures need Linux's /proc anyway.)
func setDeathSignal(*exec.Cmd) {}
