// Command argolua runs Argo CD resource health checks (health.lua) the way Argo CD does, offline.
//
// It mirrors github.com/argoproj/argo-cd/v3 util/lua (lua.go, health_test.go): gopher-lua (Lua
// 5.1) with only the package, base and table libraries plus a safe os (time/date) — what
// scripts from argocd-cm get unless useOpenLibs is set — the object as the global `obj`
// (decoded like Argo CD's decodeValue), a 1 s timeout, and the returned table encoded with
// layeh.com/gopher-json and read as {status, message}.
//
//	argolua test <resource_customizations dir>   every <group>/<kind>/health_test.yaml case
//	argolua run <health.lua> <object.yaml>...     prints {"status","message"} per object
//	argolua cm <argocd-cm.yaml> <object.yaml>...   each object with the script argocd-cm
//	                                                holds for its group/kind, as Argo CD picks it
//
// Each result is one JSON line on stdout; `test` exits 1 when any case differs.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	return obj, yaml.Unmarshal(raw, &obj)
}

type testFile struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type result struct {
	Case  string        `json:"case"`
	Want  *healthStatus `json:"want,omitempty"`
	Got   *healthStatus `json:"got,omitempty"`
	Error string        `json:"error,omitempty"`
	Ok    bool          `json:"ok"`
}

func emit(r result) {
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

func runTests(root string) (int, error) {
	var scripts []string
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "health.lua" {
			scripts = append(scripts, path)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(scripts)
	if len(scripts) == 0 {
		return 0, fmt.Errorf("no health.lua under %s", root)
	}
	failures := 0
	for _, path := range scripts {
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return 0, err
		}
		var tf testFile
		if err := yaml.UnmarshalStrict(raw, &tf); err != nil {
			return 0, fmt.Errorf("%s: %w", filepath.Join(dir, "health_test.yaml"), err)
		}
		if len(tf.Tests) == 0 {
			return 0, fmt.Errorf("%s: no tests", dir)
		}
		for _, tc := range tf.Tests {
			rel, _ := filepath.Rel(root, filepath.Join(dir, tc.InputPath))
			want := tc.HealthStatus
			r := result{Case: rel, Want: &want}
			obj, err := readObject(filepath.Join(dir, tc.InputPath))
			if err == nil {
				r.Got, err = both(obj, string(script))
			}
			if err != nil {
				r.Error = err.Error()
			} else {
				r.Ok = *r.Got == want
			}
			if !r.Ok {
				failures++
			}
			emit(r)
		}
	}
	return failures, nil
}

// override is Argo CD's ResourceOverride, the health part.
type override struct {
	healthLua   string
	useOpenLibs bool
}

// overrides reads argocd-cm's split keys as Argo CD's settings manager does
// (appendResourceOverridesFromSplitKeys): resource.customizations.<type>.<group_kind>.
func overrides(data map[string]string) (map[string]*override, error) {
	out := map[string]*override{}
	for k, v := range data {
		if !strings.HasPrefix(k, "resource.customizations") {
			continue
		}
		parts := strings.SplitN(k, ".", 4)
		if len(parts) < 4 {
			continue
		}
		groupKind := strings.Split(parts[3], "_")
		key := ""
		switch {
		case len(groupKind) == 2:
			key = groupKind[0] + "/" + groupKind[1]
		case len(groupKind) == 1 && parts[3] != "":
			key = parts[3]
		default:
			return nil, fmt.Errorf("group kind should be in format `resource.customizations.<type>.<group_kind>`, got %q", parts[3])
		}
		if out[key] == nil {
			out[key] = &override{}
		}
		switch parts[2] {
		case "health":
			out[key].healthLua = v
		case "useOpenLibs":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, err
			}
			out[key].useOpenLibs = b
		case "actions", "ignoreDifferences", "ignoreResourceUpdates", "knownTypeFields":
		default:
			return nil, fmt.Errorf("resource customization type %s not supported", parts[2])
		}
	}
	return out, nil
}

// runConfigMap judges each object with the script argocd-cm holds for its group/kind
// (GetConfigMapKey), with the libraries that key allows; no script: no health (Argo CD
// leaves the resource out of the Application's health).
func runConfigMap(cmPath string, objects []string) bool {
	cm, err := readObject(cmPath)
	ok := err == nil
	var ovs map[string]*override
	if ok {
		data := map[string]string{}
		if d, isMap := cm["data"].(map[string]any); isMap {
			for k, v := range d {
				data[k], _ = v.(string)
			}
		}
		ovs, err = overrides(data)
		ok = err == nil
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "argolua:", err)
		os.Exit(2)
	}
	failed := false
	for _, path := range objects {
		r := result{Case: path}
		obj, err := readObject(path)
		if err == nil {
			apiVersion, _ := obj["apiVersion"].(string)
			kind, _ := obj["kind"].(string)
			key := kind
			if i := strings.Index(apiVersion, "/"); i >= 0 {
				key = apiVersion[:i] + "/" + kind
			}
			if ov := ovs[key]; ov != nil && ov.healthLua != "" {
				r.Got, err = execute(obj, ov.healthLua, ov.useOpenLibs)
			} else {
				r.Error = "no health check for " + key
			}
		}
		if err != nil {
			r.Error = err.Error()
		}
		r.Ok = r.Error == ""
		failed = failed || !r.Ok
		emit(r)
	}
	return !failed
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "cm" {
		if !runConfigMap(os.Args[2], os.Args[3:]) {
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 3 || (os.Args[1] != "test" && os.Args[1] != "run") {
		fmt.Fprintln(os.Stderr, "usage: argolua test <resource_customizations dir> | run <health.lua> <object.yaml>... | cm <argocd-cm.yaml> <object.yaml>...")
		os.Exit(2)
	}
	if os.Args[1] == "test" {
		failures, err := runTests(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "argolua:", err)
			os.Exit(2)
		}
		if failures > 0 {
			fmt.Fprintf(os.Stderr, "argolua: %d case(s) failed\n", failures)
			os.Exit(1)
		}
		return
	}
	script, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argolua:", err)
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[3:] {
		r := result{Case: path}
		obj, err := readObject(path)
		if err == nil {
			r.Got, err = both(obj, string(script))
		}
		if err != nil {
			r.Error, failed = err.Error(), true
		} else {
			r.Ok = true
		}
		emit(r)
	}
	if failed {
		os.Exit(1)
	}
}
