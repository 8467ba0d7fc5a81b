package sqlstore

import "testing"

func TestRebindDollar(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE b = ?", "SELECT a FROM t WHERE b = $1"},
		{"UPDATE t SET a = ?, b = ? WHERE c = ? AND d <> ?", "UPDATE t SET a = $1, b = $2 WHERE c = $3 AND d <> $4"},
		{"SELECT '?' FROM t WHERE a = ?", "SELECT '?' FROM t WHERE a = $1"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
	} {
		if got := rebindDollar(tc.in); got != tc.want {
			t.Errorf("rebindDollar(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
