package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// ConvertCaveatValue turns a JSON-shaped caveat context value into the Go value of the caveat
// parameter type typ (`int`, `list<string>`, `map<ipaddress>`, ...), the value CEL evaluates:
// JSON numbers arrive as float64, timestamps (RFC 3339) and durations (Go syntax) as strings.
// It says why a value does not fit, so that a write can be refused naming the parameter.
func ConvertCaveatValue(typ string, v any) (any, error) {
	switch typ {
	case "int":
		return toInt(v)
	case "uint":
		i, err := toInt(v)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, fmt.Errorf("%v is negative, want uint", v)
		}
		return uint64(i), nil
	case "double":
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		case int:
			return float64(n), nil
		case json.Number:
			return n.Float64()
		}
		return nil, fmt.Errorf("%v is not a number", v)
	case "bool":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%v is not a bool", v)
	case "string":
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%v is not a string", v)
	case "ipaddress":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not an IP address string", v)
		}
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", s)
		}
		return addr.String(), nil
	case "bytes":
		if s, ok := v.(string); ok {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%v is not bytes", v)
	case "timestamp":
		switch t := v.(type) {
		case time.Time:
			return t, nil
		case string:
			ts, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 timestamp", t)
			}
			return ts, nil
		}
		return nil, fmt.Errorf("%v is not a timestamp", v)
	case "duration":
		switch d := v.(type) {
		case time.Duration:
			return d, nil
		case string:
			dur, err := time.ParseDuration(d)
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration", d)
			}
			return dur, nil
		}
		return nil, fmt.Errorf("%v is not a duration", v)
	case "any":
		return normaliseAny(v), nil
	}
	if inner, ok := strings.CutPrefix(typ, "list<"); ok {
		inner = strings.TrimSuffix(inner, ">")
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%v is not a list", v)
		}
		out := make([]any, len(items))
		for i, item := range items {
			c, err := ConvertCaveatValue(inner, item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	}
	if inner, ok := strings.CutPrefix(typ, "map<"); ok {
		inner = strings.TrimSuffix(inner, ">")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%v is not a map", v)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			c, err := ConvertCaveatValue(inner, item)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown parameter type %q", typ)
}

func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		return int64(n), nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case json.Number:
		return n.Int64()
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

// normaliseAny turns integral JSON numbers into int64 so `somemap.foo == 42` compares as the
// schema author wrote it.
func normaliseAny(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = normaliseAny(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = normaliseAny(item)
		}
		return out
	}
	return v
}
