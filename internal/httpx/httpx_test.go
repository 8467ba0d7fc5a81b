package httpx

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

type loginBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func decode(body, contentType string) (loginBody, error) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	var v loginBody
	err := DecodeJSON(httptest.NewRecorder(), r, &v)
	return v, err
}

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, body, ct string
		want           *problem.Problem
	}{
		{"ok", `{"email":"a@b.co","password":"x"}`, "application/json", nil},
		{"ok with charset", `{"email":"a@b.co"}`, "application/json; charset=utf-8", nil},
		{"ok nested arrays", `{"email":"a@b.co","password":"x"}`, "application/json", nil},
		{"no content type", `{}`, "", problem.UnsupportedMedia},
		{"text/plain", `{}`, "text/plain", problem.UnsupportedMedia},
		{"syntax", `{"email":}`, "application/json", problem.MalformedJSON},
		{"empty", ``, "application/json", problem.MalformedJSON},
		{"null", `null`, "application/json", nil},
		{"string root", `"x"`, "application/json", problem.MalformedJSON},
		{"two values", `{} {}`, "application/json", problem.MalformedJSON},
		{"unknown field", `{"admin":true}`, "application/json", problem.UnknownField},
		{"wrong type", `{"email":1}`, "application/json", problem.InvalidField},
		{"duplicate key", `{"email":"a","email":"b"}`, "application/json", problem.MalformedJSON},
		{"duplicate key differing only after escape", `{"email":"a","em\u0061il":"b"}`, "application/json", problem.MalformedJSON},
		{"same key in sibling objects is fine", `{"email":"a","password":"p"}`, "application/json", nil},
		{"too large", `{"email":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, "application/json", problem.BodyTooLarge},
		{"invalid utf-8", "{\"email\":\"\xff\"}", "application/json", problem.MalformedJSON},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.body, tc.ct)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %s", err, tc.want.Code)
			}
		})
	}
}

func TestCheckDuplicateKeysNested(t *testing.T) {
	for body, dup := range map[string]bool{
		`{"a":{"b":1,"b":2}}`:             true,
		`{"a":[{"b":1},{"b":2}]}`:         false,
		`{"a":{"b":1},"c":{"b":1}}`:       false,
		`{"a":[1,2,{"x":1}],"a":1}`:       true,
		`[{"k":1,"k":1}]`:                 true,
		`{"a":"b","b":"a"}`:               false,
		`{"a":{},"b":[],"c":{"d":[]}}`:    false,
		`{"a":{"a":{"a":1}},"b":{"a":1}}`: false,
	} {
		err := checkDuplicateKeys([]byte(body))
		if (err != nil) != dup {
			t.Errorf("%s: err %v, want duplicate=%v", body, err, dup)
		}
	}
}

// FuzzDecodeJSON: no input makes decoding panic or yield anything but nil
// or a 4xx problem.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"email":"a@b.co","password":"x"}`, `{"a":{"b":[1,{"c":2}]}}`, `{"email":"a","email":"b"}`, `[`, `{"email":1}`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		_, err := decode(body, "application/json")
		if err == nil {
			return
		}
		var p *problem.Problem
		if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 {
			t.Fatalf("non-4xx error %v for %q", err, body)
		}
	})
}

func TestAdaptRendersProblemsAndHidesInternalErrors(t *testing.T) {
	h := Adapt(nil, func(w http.ResponseWriter, r *http.Request) error {
		return errors.New("database password is hunter2")
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "hunter2") || !strings.Contains(rec.Body.String(), `"code":"internal_error"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}

func TestCheckString(t *testing.T) {
	if err := CheckString("name", "Zoë", 3); err != nil {
		t.Error(err)
	}
	if err := CheckString("name", "Zoëy", 3); err == nil {
		t.Error("over-long accepted")
	}
	if err := CheckString("name", "a\nb", 10); err == nil {
		t.Error("control character accepted")
	}
}

// A panicking handler becomes a logged 500 problem, not a dropped
// connection, and the panic value never reaches the client.
func TestAccessLogRecoversPanics(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret state") }), RequestID, AccessLog(log, nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal_error"`) || strings.Contains(rec.Body.String(), "secret state") {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "panic in handler") || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestAccessLogQuietRequestsAtDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	quiet := func(r *http.Request, status int) bool { return r.URL.Path == "/quiet" && status == http.StatusOK }
	h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("deny") != "" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}), AccessLog(log, quiet))
	for _, target := range []string{"/quiet", "/quiet?deny=1", "/loud"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	got := strings.Count(buf.String(), `"msg":"request"`)
	if got != 2 || strings.Contains(buf.String(), `"path":"/quiet","status":200`) {
		t.Fatalf("want the refusal and /loud at info only, got %d lines:\n%s", got, buf.String())
	}
}
