package storetest

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var ipRulesTests = []storeTest{
	{"PutListReplace", testPutListReplaceIPRules},
	{"ExpiryAndPurge", testIPRuleExpiryAndPurge},
	{"DeleteMissing", testDeleteMissingIPRule},
}

func ipRule(prefix, action string, expires time.Time) *store.IPRule {
	return &store.IPRule{
		Prefix: netip.MustParsePrefix(prefix), Action: action, Reason: "r " + prefix,
		CreatedBy: "cli", CreatedAt: norm(base), ExpiresAt: expires,
	}
}

func testPutListReplaceIPRules(t *testing.T, s store.Store) {
	ctx := t.Context()
	rules := s.IPRules()
	for _, r := range []*store.IPRule{
		ipRule("198.51.100.0/24", store.IPDeny, time.Time{}),
		ipRule("2001:db8:1::/48", store.IPAllow, time.Time{}),
		ipRule("192.0.2.7/32", store.IPDeny, norm(base.Add(time.Hour))),
	} {
		if err := rules.PutIPRule(ctx, r); err != nil {
			t.Fatalf("PutIPRule(%s): %v", r.Prefix, err)
		}
	}
	// Replacing by prefix: the allow rule becomes a deny; a prefix given
	// unmasked names the same rule.
	if err := rules.PutIPRule(ctx, ipRule("2001:db8:1::1/48", store.IPDeny, time.Time{})); err != nil {
		t.Fatal(err)
	}
	got, err := rules.ListIPRules(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	want := []*store.IPRule{
		ipRule("192.0.2.7/32", store.IPDeny, norm(base.Add(time.Hour))),
		ipRule("198.51.100.0/24", store.IPDeny, time.Time{}),
		ipRule("2001:db8:1::/48", store.IPDeny, time.Time{}),
	}
	want[2].Reason = "r 2001:db8:1::1/48"
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Fatalf("ListIPRules (-want +got):\n%s", d)
	}
}

func testIPRuleExpiryAndPurge(t *testing.T, s store.Store) {
	ctx := t.Context()
	rules := s.IPRules()
	if err := rules.PutIPRule(ctx, ipRule("192.0.2.0/24", store.IPDeny, base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if got, _ := rules.ListIPRules(ctx, base.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("a rule expired at now is listed: %v", got)
	}
	if got, _ := rules.ListIPRules(ctx, base); len(got) != 1 {
		t.Fatalf("a live rule is not listed: %v", got)
	}
	if err := rules.PurgeIPRules(ctx, base); err != nil {
		t.Fatal(err)
	}
	if err := rules.DeleteIPRule(ctx, netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		t.Fatalf("purge removed a rule expiring after the cutoff: %v", err)
	}
	if err := rules.PutIPRule(ctx, ipRule("192.0.2.0/24", store.IPDeny, base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := rules.PurgeIPRules(ctx, base.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := rules.DeleteIPRule(ctx, netip.MustParsePrefix("192.0.2.0/24")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purge kept an expired rule: %v", err)
	}
}

func testDeleteMissingIPRule(t *testing.T, s store.Store) {
	if err := s.IPRules().DeleteIPRule(t.Context(), netip.MustParsePrefix("203.0.113.0/24")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteIPRule of a missing rule = %v, want ErrNotFound", err)
	}
}
