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
//
// Each result is one JSON line on stdout; `test` exits 1 when any case differs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// healthStatus is gitops-engine's health.HealthStatus.
type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true,
	"Missing": true,
}

func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

var osFuncs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int { l.Push(lua.LNumber(time.Now().Unix())); return 1 },
	"date": func(l *lua.LState) int { l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339))); return 1 },
}

// execute is VM.ExecuteHealthLua with UseOpenLibs as given.
func execute(obj map[string]any, script string, openLibs bool) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		// Argo CD's OpenSafeOs registers its functions under the table module's name.
		{lua.OsLibName, func(l *lua.LState) int {
			l.Push(l.RegisterModule(lua.TabLibName, osFuncs))
			return 1
		}},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true},
			lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), osFuncs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj))
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	// Argo CD drops the Lua stack trace from run-time errors (they reach the user).
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
	}
	if err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return &healthStatus{}, nil
	case lua.LTTable:
	default:
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	raw, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	hs := &healthStatus{}
	if err := json.Unmarshal(raw, hs); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Value == "array" {
			return &healthStatus{}, nil // an empty table encodes as []
		}
		return nil, err
	}
	if !validStatus[hs.Status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

// both runs a script the way argocd-cm scripts run (libraries closed) and the way Argo CD's
// own health test runs built-in scripts (libraries open); a script must agree in both.
func both(obj map[string]any, script string) (*healthStatus, error) {
	closed, err := execute(obj, script, false)
	if err != nil {
		return nil, fmt.Errorf("with argocd-cm's libraries: %w", err)
	}
	open, err := execute(obj, script, true)
	if err != nil {
		return nil, fmt.Errorf("with open libraries: %w", err)
	}
	if *open != *closed {
		return nil, fmt.Errorf("differs with open libraries: %+v vs %+v", *open, *closed)
	}
	return closed, nil
}

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

func main() {
	if len(os.Args) < 3 || (os.Args[1] != "test" && os.Args[1] != "run") {
		fmt.Fprintln(os.Stderr, "usage: argolua test <resource_customizations dir> | run <health.lua> <object.yaml>...")
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
