// Command gitops-check gives the health verdicts that GitOps tools give Kubernetes
// objects, without those tools and without a cluster, so that tests can check the
// project's objects in every state against what Flux and Argo CD will say about them.
//
//	gitops-check kstatus               < objects
//	gitops-check argo-health SCRIPT.lua < objects
//
// objects: one object, a `kind: List` (as `kubectl get -o json` prints) or several YAML or
// JSON documents. One JSON line per object is printed: kind, namespace, name, status,
// message.
//
// kstatus is the library Flux (`wait: true`, healthChecks) and kpt use: the verdict is
// status.Compute's (Current, InProgress, Failed, Terminating).
//
// argo-health runs an Argo CD resource health script the way Argo CD's Lua VM runs one
// given in argocd-cm: gopher-lua (Lua 5.1) with only the package, base and table libraries
// (no string, math or io; Argo CD's restricted os is left out too, so a script that needs it
// fails here rather than passing untested), a one-second limit, and the object as the
// global `obj` (maps as tables, arrays as tables indexed from 1, numbers, booleans, null
// as nil). The script returns a table with `status` (Healthy, Progressing, Degraded,
// Suspended, Missing, Unknown) and `message`; any other status is Unknown, as in Argo CD.
// A script that fails, or returns anything but such a table, ends the command with exit
// status 1 and the error. Argo CD itself reports an object being deleted as Progressing
// before any script runs; this command runs the script regardless, so the script's own
// handling of deletion is what is checked.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const usage = `usage: gitops-check kstatus < objects
       gitops-check argo-health SCRIPT.lua < objects
objects: one Kubernetes object, a List, or several YAML/JSON documents on stdin.
Prints one JSON line per object: {"kind","namespace","name","status","message"}.
`

// Argo CD gives a health script this long before it stops it.
const argoScriptTimeout = time.Second

// The statuses Argo CD accepts from a health script; anything else becomes Unknown.
var argoStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

type judge func(*unstructured.Unstructured) (status, message string, err error)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var check judge
	switch {
	case len(args) == 1 && args[0] == "kstatus":
		check = kstatusVerdict
	case len(args) == 2 && args[0] == "argo-health":
		script, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "gitops-check: %v\n", err)
			return 1
		}
		check = func(u *unstructured.Unstructured) (string, string, error) {
			return argoHealth(u.Object, string(script))
		}
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	objects, err := readObjects(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "gitops-check: reading objects: %v\n", err)
		return 1
	}
	out := json.NewEncoder(stdout)
	for _, u := range objects {
		v := verdict{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
		v.Status, v.Message, err = check(u)
		if err != nil {
			fmt.Fprintf(stderr, "gitops-check: %s %s: %v\n", v.Kind, objectName(u), err)
			return 1
		}
		if err := out.Encode(v); err != nil {
			fmt.Fprintf(stderr, "gitops-check: %v\n", err)
			return 1
		}
	}
	return 0
}

func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// readObjects decodes every document of r, expanding lists into their items. Numbers are
// decoded as the API machinery decodes them (integers as int64), which kstatus relies on.
func readObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objects []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return objects, nil
		} else if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		var doc map[string]interface{}
		if err := utiljson.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("a document is not an object: %w", err)
		}
		objects = append(objects, expand(doc)...)
	}
}

// expand returns a list's items (each given the list's kind when it has none, as in a raw
// API list response), or the object itself.
func expand(doc map[string]interface{}) []*unstructured.Unstructured {
	kind, _ := doc["kind"].(string)
	items, isList := doc["items"].([]interface{})
	if !isList || !strings.HasSuffix(kind, "List") {
		return []*unstructured.Unstructured{{Object: doc}}
	}
	objects := make([]*unstructured.Unstructured, 0, len(items))
	for _, item := range items {
		obj, ok := item.(map[string]interface{})
		if !ok {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "" && kind != "List" {
			u.SetKind(strings.TrimSuffix(kind, "List"))
			if apiVersion, _ := doc["apiVersion"].(string); apiVersion != "" {
				u.SetAPIVersion(apiVersion)
			}
		}
		objects = append(objects, u)
	}
	return objects
}

func kstatusVerdict(u *unstructured.Unstructured) (string, string, error) {
	result, err := status.Compute(u)
	if err != nil {
		return "", "", err
	}
	return string(result.Status), result.Message, nil
}

// argoHealth runs script on obj in a Lua state set up as Argo CD sets one up for a health
// script from argocd-cm.
func argoHealth(obj map[string]interface{}, script string) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", fmt.Errorf("opening the Lua library %q: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), argoScriptTimeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	returned := l.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	// Argo CD reads the table through JSON: an empty table or an array is no status.
	empty := true
	table.ForEach(func(lua.LValue, lua.LValue) { empty = false })
	if empty || table.MaxN() > 0 {
		return "", "", errors.New("the Lua script returned an empty table or an array, not {status=..., message=...}")
	}
	health, err := stringField(table, "status")
	if err != nil {
		return "", "", err
	}
	message, err := stringField(table, "message")
	if err != nil {
		return "", "", err
	}
	if !argoStatuses[health] {
		return "Unknown", "Lua returned an invalid health status", nil
	}
	return health, message, nil
}

func stringField(table *lua.LTable, key string) (string, error) {
	switch value := table.RawGetString(key).(type) {
	case lua.LString:
		return string(value), nil
	case *lua.LNilType:
		return "", nil
	default:
		return "", fmt.Errorf("the Lua script's %s is a %s, not a string", key, value.Type())
	}
}

// toLua converts a decoded object as Argo CD does: maps to tables keyed by string, arrays
// to tables indexed from 1, numbers, booleans and strings to their Lua values, null to nil.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []interface{}:
		array := l.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(toLua(l, item))
		}
		return array
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	default:
		return lua.LNil
	}
}
