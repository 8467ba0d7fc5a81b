package password

import (
	_ "embed"
	"slices"
	"strings"
	"sync"
)

//go:generate go run ./internal/genblocklist

// blocklistData holds the common and breached passwords of at least 8 code
// points from @zxcvbn-ts/language-common 4.1.3 (MIT, see
// blocklist.LICENSE.txt), NFKC-normalized, case-folded, sorted and
// de-duplicated, one per line.
//
//go:embed blocklist.txt
var blocklistData string

// blocklist returns the lines of blocklistData, split on first use.
var blocklist = sync.OnceValue(loadBlocklist)

// loadBlocklist splits blocklistData into lines that share its memory. It
// takes well under a millisecond (BenchmarkLoadBlocklist).
func loadBlocklist() []string {
	return strings.Split(strings.TrimSuffix(blocklistData, "\n"), "\n")
}

// isCommon reports whether folded, an NFKC-normalized and case-folded
// password, is on the blocklist.
func isCommon(folded string) bool {
	_, found := slices.BinarySearch(blocklist(), folded)
	return found
}
