package mailtest

import (
	"net/smtp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParsesBase64AndNestedParts(t *testing.T) {
	s := NewServer(t)
	msg := strings.ReplaceAll(`From: a@example.com
To: b@example.com
Subject: =?UTF-8?B?R3LDvMOfZQ==?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

R3LDvMOfZSwgY29kZSAxMjM0NTYK
--inner
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

<p>Gr=C3=BC=C3=9Fe</p>
--inner--
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAEC
--outer--
`, "\n", "\r\n")
	if err := smtp.SendMail(strings.TrimPrefix(s.URL(), "smtp://"), nil, "a@example.com", []string{"b@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := s.Wait(t, 1, 5*time.Second)[0]
	if got.From != "a@example.com" || len(got.To) != 1 || got.To[0] != "b@example.com" || got.TLS {
		t.Errorf("envelope %q %q TLS %v", got.From, got.To, got.TLS)
	}
	if got.Subject != "Grüße" || got.Text != "Grüße, code 123456\n" || got.HTML != "<p>Grüße</p>" {
		t.Errorf("parsed %q %q %q", got.Subject, got.Text, got.HTML)
	}
}

func TestWaitFailsAfterTimeout(t *testing.T) {
	s := NewServer(t)
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Wait(ft, 1, 10*time.Millisecond)
	}()
	<-done
	if !ft.failed {
		t.Error("Wait did not fail the test")
	}
}

// fakeT records Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
