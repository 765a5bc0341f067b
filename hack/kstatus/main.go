// Command kstatus computes the kstatus status (sigs.k8s.io/cli-utils pkg/kstatus/status.Compute,
// the code Flux, Helm 4 --wait and kpt run) of Kubernetes objects, so tests judge mlkube's
// status the way those tools do instead of re-implementing their rules.
//
// Objects come as YAML or JSON documents on stdin (a List is expanded); one JSON line per object
// goes to stdout: {"kind","name","namespace","status","message","conditions"}.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind       string             `json:"kind"`
	Name       string             `json:"name"`
	Namespace  string             `json:"namespace"`
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func compute(obj runtime.Object, out *json.Encoder) error {
	if list, ok := obj.(*unstructured.UnstructuredList); ok {
		for i := range list.Items {
			if err := compute(&list.Items[i], out); err != nil {
				return err
			}
		}
		return nil
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("unexpected object %T", obj)
	}
	res, err := status.Compute(u)
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	conds := res.Conditions
	if conds == nil {
		conds = []status.Condition{}
	}
	return out.Encode(result{
		Kind: u.GetKind(), Name: u.GetName(), Namespace: u.GetNamespace(),
		Status: res.Status.String(), Message: res.Message, Conditions: conds,
	})
}

func main() {
	if len(os.Args) > 1 && os.Args[1] != "-" {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.yaml  (YAML/JSON documents or a List on stdin)")
		os.Exit(2)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	out := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			fmt.Fprintln(os.Stderr, "kstatus: decode:", err)
			os.Exit(1)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// The unstructured JSON scheme keeps integers int64 (kstatus reads generations so).
		obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: decode:", err)
			os.Exit(1)
		}
		if err := compute(obj, out); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
	}
}
