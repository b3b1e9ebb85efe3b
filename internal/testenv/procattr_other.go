//go:build !linux

package testenv

import "os/exec"

func setProcAttr(cmd *exec.Cmd) {}
