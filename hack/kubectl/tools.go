//go:build tools

// Package tools pins kubectl so `go mod tidy` keeps its dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubectl"
)
