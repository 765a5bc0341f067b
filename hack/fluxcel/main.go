// Command fluxcel evaluates Flux healthCheckExprs with Flux's own evaluator, offline.
//
// It calls github.com/fluxcd/pkg/runtime/cel.NewStatusEvaluator at the version
// kustomize-controller requires (so cel-go, the environment options and RFC 0009's order —
// observedGeneration first, then inProgress, failed, current — are Flux's, not a copy).
//
//	fluxcel <kustomization.yaml> <object.yaml>...
//
// The Kustomization's spec.healthCheckExprs are matched to each object by apiVersion's group
// and kind, as kustomize-controller's StatusReader does. One JSON line per object:
// {"object": path, "status": "Current"|"Failed"|"InProgress", "error": ...}. Exit 1 on any error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

type kustomization struct {
	Kind string `json:"kind"`
	Spec struct {
		HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	} `json:"spec"`
}

type result struct {
	Object string `json:"object"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

func load(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(raw, into)
}

// readObject decodes an object as kustomize-controller receives it from the API server
// (unstructured JSON: whole numbers are int64), so Flux's observedGeneration check applies;
// a plain YAML/JSON decode would give float64 and silently skip it.
func readObject(path string) (*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	return u, u.UnmarshalJSON(doc)
}

func evaluators(ks kustomization) (map[schema.GroupKind]*cel.StatusEvaluator, error) {
	out := map[schema.GroupKind]*cel.StatusEvaluator{}
	for i, hc := range ks.Spec.HealthCheckExprs {
		gk := schema.FromAPIVersionAndKind(hc.APIVersion, hc.Kind).GroupKind()
		if _, dup := out[gk]; dup {
			return nil, fmt.Errorf("duplicate custom health check for GroupKind %s at healthchecks[%d]", gk, i)
		}
		se, err := cel.NewStatusEvaluator(&hc.HealthCheckExpressions)
		if err != nil {
			return nil, fmt.Errorf("healthchecks[%d]: %w", i, err)
		}
		out[gk] = se
	}
	return out, nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: fluxcel <kustomization.yaml> <object.yaml>...")
		os.Exit(2)
	}
	var ks kustomization
	if err := load(os.Args[1], &ks); err != nil {
		fmt.Fprintln(os.Stderr, "fluxcel:", err)
		os.Exit(2)
	}
	evs, err := evaluators(ks)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxcel:", err)
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[2:] {
		r := result{Object: path}
		u, err := readObject(path)
		if err == nil {
			ev, ok := evs[u.GroupVersionKind().GroupKind()]
			if !ok {
				err = fmt.Errorf("no health check for %s", u.GroupVersionKind().GroupKind())
			} else {
				var st *status.Result
				if st, err = ev.Evaluate(context.Background(), u); err == nil {
					r.Status = string(st.Status)
				}
			}
		}
		if err != nil {
			r.Error, failed = err.Error(), true
		}
		line, _ := json.Marshal(r)
		fmt.Println(string(line))
	}
	if failed {
		os.Exit(1)
	}
}
