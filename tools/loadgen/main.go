// Command loadgen measures Gatehouse against baselines taken in the same run,
// so that the figures are ratios that mean something on any machine:
//
//  1. Sign-in throughput. Closed-loop POST /v1/login on keep-alive
//     connections by -login-concurrency workers (default 4 × NumCPU), each
//     signing in its own account, divided by the throughput of raw argon2id
//     (golang.org/x/crypto/argon2.IDKey with the same m, t and p, a 16-byte
//     salt and a 32-byte key) computed by NumCPU goroutines. Target ≥ 0.9.
//  2. Authenticated GET /v1/me. Closed loop on -conns keep-alive connections
//     (default 4 × NumCPU) with session cookies whose sessions are in the
//     server's cache (each slice starts with a warm-up), divided by the same
//     client, request and connection count against a net/http server whose
//     handler does nothing. Target ≥ 0.5.
//  3. Memory. VmRSS of the server fresh and idle after one sign-up, and its
//     peak under the sign-in load (the largest VmRSS sampled every 100 ms,
//     and VmHWM), from /proc/PID/status.
//  4. Token-mode forward-auth. Closed-loop GET /v1/forward-auth with
//     "Authorization: Bearer <access token>" on -conns connections (the
//     server verifies the JWT and checks its in-memory revocation set, no
//     store read), divided by the same client, request (Authorization header
//     included) and connection count against the no-op server. Target ≥ 0.6.
//     Each connection repeats one token, which the server's verifier
//     remembers after the first request; after the refresh scenario, a
//     series for context cycles through every access token the rotations
//     minted, more than the verifier remembers, so that most requests
//     verify an Ed25519 signature.
//  5. Refresh-token rotations. Closed-loop POST /v1/token/refresh with a
//     JSON body by each -refresh-clients count of workers (default 1 and
//     32), each worker its own token-mode account, session and rotation
//     chain: it always sends the latest refresh token it was given. Measured
//     on SQLite and, with -postgres, on PostgreSQL. Reported as rotations/s
//     with latency; for context only, divided by the no-op server answering
//     the same request shape (a POST with a JSON body of the same size) on
//     the same number of connections.
//
// -scenarios selects among login (1 and 3), me (2), refresh (5) and
// forward-auth (4), which run in that order; only what they need is
// started.
//
// # Using the machine the same way
//
// The load generator shares the cores with what it measures, so each
// baseline runs the way its measurement does. The argon2id baseline runs in
// a child process (loadgen re-executes itself with -argon2-baseline and
// keeps it, warm, for the whole run) while loadgen only waits for its
// answer, just as the server hashes in its own process while loadgen only
// waits on sockets. The no-op server is a child process too (-noop-server),
// driven by the same client code, request (cookie included) and connection
// count as /v1/me. Every process that is not being measured is idle.
//
// Measurement and baseline are interleaved: -rounds rounds, each running
// every series (baseline, then Gatehouse once per -log-levels entry) for one
// slice of -warmup + -slice, in an order that rotates from round to round.
// A ratio is total operations of the series over total operations of its
// baseline, over equal measured time, so slow drift and bursts of noise on a
// shared machine hit both sides alike; the per-round ratios are reported as
// a spread, and the per-round rates are listed, so that a drift (noise, or
// a server slowing down as its tables grow) shows. CPU use of the measured process, of loadgen and of the rest of
// the machine ("other", from /proc/stat) is reported per series, so noise
// from other processes is visible. A CPU-normalized ratio (CPU per
// operation of the baseline over that of the series, loadgen's share
// included) is printed next to each ratio: it is what the throughput ratio
// would be if both had the cores to themselves, and it moves much less than
// throughput when other processes compete for the machine.
//
// Within a slice, workers start operations only before the window ends; an
// operation counts if it completes inside the window; each worker is also
// bounded by -max-ops per slice. The next slice starts only when every
// operation of the previous one has finished.
//
// Gatehouse runs as a child built elsewhere (-gatehouse PATH; loadgen builds
// nothing): `serve --dev` on a free 127.0.0.1 port with a fresh data
// directory in a temporary directory, sign-in and sign-up throttles raised
// so that the load is not refused, access tokens living 1 h so that none
// expires during a run, its JSON log written to a file there. One server
// runs per -log-levels entry (default "warn,info": at info the access log
// writes a line per request) and backend: SQLite in the data directory
// always; PostgreSQL for the refresh scenario when -postgres names a
// server on this machine, each Gatehouse then getting a fresh database
// (CREATE DATABASE gh_bench_…) that is dropped at the end. The work of the
// PostgreSQL processes (every process named postgres) is accounted as
// "pg" CPU next to the server's. After the run, the warnings, errors and
// 5xx responses in each server's log are counted in the report.
//
// Children are stopped on return, error, panic and SIGINT/SIGTERM/SIGHUP
// (and the databases dropped after them); on Linux the kernel also kills
// them if loadgen dies (SIGKILL included), and the baseline children exit
// when their stdin closes.
//
// Usage (scripts/bench.sh does this):
//
//	go build -o /tmp/gatehouse ./cmd/gatehouse
//	go run ./tools/loadgen -gatehouse /tmp/gatehouse
//	go run ./tools/loadgen -gatehouse /tmp/gatehouse -scenarios refresh,forward-auth \
//	    -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/argon2"
)

const (
	benchPassword = "correct horse battery staple"
	// bigLimit raises the throttles far beyond what a run can reach.
	bigLimit = "1000000000"
	// maxLatencySamples bounds the memory used for latency percentiles.
	maxLatencySamples = 1_000_000
)

type options struct {
	gatehouse        string
	rounds           int
	slice            time.Duration
	warmup           time.Duration
	loginConcurrency int
	conns            int
	hashConcurrency  int
	logLevels        []string
	argon2Memory     uint
	argon2Time       uint
	argon2Threads    uint
	maxOps           int
	timeout          time.Duration
	keep             bool
	scenarios        map[string]bool
	refreshClients   []int
	postgres         string // admin URL of a local PostgreSQL; "" = SQLite only
}

// Scenarios, in the order they run.
const (
	scLogin   = "login"
	scMe      = "me"
	scForward = "forward-auth"
	scRefresh = "refresh"
)

var allScenarios = []string{scLogin, scMe, scRefresh, scForward}

// parseScenarios parses the -scenarios list.
func parseScenarios(list string) (map[string]bool, error) {
	m := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !slices.Contains(allScenarios, name) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(allScenarios, ","))
		}
		m[name] = true
	}
	if len(m) == 0 {
		return nil, errors.New("no scenario selected")
	}
	return m, nil
}

// parseCounts parses a comma-separated list of positive integers.
func parseCounts(list string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("not a positive integer: %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func main() {
	code := 2
	func() {
		// Runs on return and while a panic unwinds main's goroutine.
		defer cleanup()
		code = realMain(os.Args[1:])
	}()
	os.Exit(code)
}

func realMain(args []string) int {
	var o options
	var levels, scenarios, refreshClients string
	var noop, baseline bool
	var addr string
	var workers int
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.gatehouse, "gatehouse", "", "path of a built gatehouse binary (required)")
	fs.IntVar(&o.rounds, "rounds", 4, "rounds; each runs every series for one slice")
	fs.DurationVar(&o.slice, "slice", 2*time.Second, "measured window of one slice")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each slice's window")
	fs.IntVar(&o.loginConcurrency, "login-concurrency", 4*runtime.NumCPU(), "concurrent sign-in workers (one account and connection each)")
	fs.IntVar(&o.conns, "conns", 4*runtime.NumCPU(), "connections (one worker each) for GET /v1/me and the no-op baseline")
	fs.IntVar(&o.hashConcurrency, "hash-concurrency", 0, "--hash-concurrency of the server (0 = its default, NumCPU)")
	fs.StringVar(&levels, "log-levels", "warn,info", "comma-separated --log-level values; one server runs per value")
	fs.UintVar(&o.argon2Memory, "argon2-memory", 19456, "argon2id memory in KiB (server and baseline)")
	fs.UintVar(&o.argon2Time, "argon2-time", 2, "argon2id passes (server and baseline)")
	fs.UintVar(&o.argon2Threads, "argon2-threads", 1, "argon2id parallelism (server and baseline)")
	fs.IntVar(&o.maxOps, "max-ops", 1_000_000, "upper bound of operations per worker and slice")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "abort the whole run after this long")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (server logs, databases) and the PostgreSQL databases")
	fs.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run: "+strings.Join(allScenarios, ", "))
	fs.StringVar(&refreshClients, "refresh-clients", "1,32", "comma-separated counts of concurrent refresh clients (one token-mode session and connection each); one series per count")
	fs.StringVar(&o.postgres, "postgres", "", "postgres:// URL of a PostgreSQL on this machine where loadgen may create and drop databases; empty: the refresh scenario runs on SQLite only")
	// Child modes: loadgen re-executes itself for the baselines.
	fs.BoolVar(&noop, "noop-server", false, "child mode: serve a no-op handler on -addr, print its address")
	fs.BoolVar(&baseline, "argon2-baseline", false, `child mode: for each "run WARMUP WINDOW" line on stdin, hash with -workers goroutines and print JSON`)
	fs.StringVar(&addr, "addr", "127.0.0.1:0", "child mode -noop-server: listen address (loopback only)")
	fs.IntVar(&workers, "workers", runtime.NumCPU(), "child mode -argon2-baseline: goroutines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for l := range strings.SplitSeq(levels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			o.logLevels = append(o.logLevels, l)
		}
	}

	switch {
	case noop:
		if err := noopServer(addr, o.timeout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen -noop-server:", err)
			return 1
		}
		return 0
	case baseline:
		if err := argon2Baseline(o, workers); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen -argon2-baseline:", err)
			return 1
		}
		return 0
	}

	if o.gatehouse == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -gatehouse PATH is required (go build -o /tmp/gatehouse ./cmd/gatehouse)")
		return 2
	}
	var err error
	if o.scenarios, err = parseScenarios(scenarios); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: -scenarios:", err)
		return 2
	}
	if o.refreshClients, err = parseCounts(refreshClients); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: -refresh-clients:", err)
		return 2
	}
	if o.postgres != "" {
		if err := checkPostgresURL(o.postgres); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: -postgres:", err)
			return 2
		}
	}
	if o.rounds < 1 || o.slice <= 0 || o.warmup < 0 || o.loginConcurrency < 1 || o.conns < 1 || o.maxOps < 1 || len(o.logLevels) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -rounds, -slice, -login-concurrency, -conns, -max-ops and -log-levels must be positive or non-empty")
		return 2
	}

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "\nloadgen: %v: stopping children\n", s)
		cleanup()
		os.Exit(130)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	rep, err := run(ctx, o)
	if rep != nil {
		rep.print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if rep.invalid() {
		fmt.Fprintln(os.Stderr, "loadgen: some series had errors; their ratios are not valid")
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// Measurement loop

// phase is the outcome of one closed-loop measurement.
type phase struct {
	Workers  int
	Ops      int64         // completed successfully inside the window
	Errs     int64         // failed at any time, warm-up included
	FirstErr string        // the first failure, for the report
	Window   time.Duration // measurement window
	Lat      []time.Duration
	CPU      cpuWindow // server (or child) and client CPU over the window
}

func (p *phase) Rate() float64 { return float64(p.Ops) / p.Window.Seconds() }

// Pct returns the q-quantile (0..1) of the latencies.
func (p *phase) Pct(q float64) time.Duration {
	if len(p.Lat) == 0 {
		return 0
	}
	i := int(q * float64(len(p.Lat)-1))
	return p.Lat[i]
}

// cpuWindow holds CPU seconds consumed during the window: by the process
// under test, by loadgen (the client), and by the whole machine, so that
// Other = Machine − Server − Client shows load from anything else.
type cpuWindow struct {
	Server, Client, Machine float64
	// DB is the CPU of the PostgreSQL processes, for a server on
	// PostgreSQL; 0 otherwise.
	DB float64
}

// Other is the CPU used by none of them: other processes, steal, and
// interrupt time not charged to a process.
func (c cpuWindow) Other() float64 { return max(0, c.Machine-c.Server-c.Client-c.DB) }

// cpuSnap is a CPU snapshot of the process under test, loadgen, the
// machine and, if accounted, each PostgreSQL process.
type cpuSnap struct {
	server, client, machine float64
	db                      map[int]float64
}

func snap(pid int, db bool) cpuSnap {
	s := cpuSnap{server: procCPU(pid), client: selfCPU(), machine: machineCPU()}
	if db {
		s.db = postgresCPU()
	}
	return s
}

func (a cpuSnap) to(b cpuSnap) cpuWindow {
	w := cpuWindow{Server: b.server - a.server, Client: b.client - a.client, Machine: b.machine - a.machine}
	// A process started inside the window counts whole; one that ended
	// inside it is lost (PostgreSQL's backends live as long as the pool's
	// connections).
	for pid, c := range b.db {
		w.DB += max(0, c-a.db[pid])
	}
	return w
}

// closedLoop runs op on workers goroutines: warm-up, then the measured
// window. Each worker stops starting operations at the end of the window or
// after maxOps operations; ops in flight at the end finish but do not count.
// onStart and onEnd run at the window's edges (for CPU snapshots).
func closedLoop(ctx context.Context, workers int, warmup, window time.Duration, maxOps int,
	op func(ctx context.Context, w int) error, onStart, onEnd func()) *phase {
	start := time.Now()
	from := start.Add(warmup)
	end := from.Add(window)
	// Hard bound for operations stuck past the window.
	ctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()

	type result struct {
		ops, errs int64
		first     string
		lat       []time.Duration
	}
	results := make([]result, workers)
	perWorker := max(1, maxLatencySamples/workers)
	var edges sync.WaitGroup
	edges.Go(func() {
		defer guard()
		if sleepUntil(ctx, from) && onStart != nil {
			onStart()
		}
		if sleepUntil(ctx, end) && onEnd != nil {
			onEnd()
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			defer guard()
			r := &results[w]
			for range maxOps {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				err := op(ctx, w)
				t1 := time.Now()
				if err != nil {
					if r.errs == 0 {
						r.first = err.Error()
					}
					r.errs++
					continue
				}
				if t1.Before(from) || t1.After(end) {
					continue
				}
				r.ops++
				if len(r.lat) < perWorker {
					r.lat = append(r.lat, t1.Sub(t0))
				}
			}
		})
	}
	wg.Wait()
	edges.Wait()
	p := &phase{Workers: workers, Window: window}
	for _, r := range results {
		p.Ops += r.ops
		p.Errs += r.errs
		if p.FirstErr == "" {
			p.FirstErr = r.first
		}
		p.Lat = append(p.Lat, r.lat...)
	}
	slices.Sort(p.Lat)
	return p
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ---------------------------------------------------------------------------
// Child mode: raw argon2id baseline

type baselineResult struct {
	Hashes  int64   `json:"hashes"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"`         // this process, over the window
	Machine float64 `json:"machine_cpu_seconds"` // the whole machine, over the window
	Lat     []int64 `json:"latencies_ns"`        // per hash, sorted
}

// argon2Baseline serves "run WARMUP WINDOW" lines from stdin: for each it
// hashes with workers goroutines (a closed loop, like the server's hashing
// slots) and prints a baselineResult as one JSON line. It returns at "quit",
// at the end of stdin (the parent is gone) or after at most 10 000 commands.
func argon2Baseline(o options, workers int) error {
	if workers < 1 || o.argon2Threads < 1 || o.argon2Threads > 255 {
		return errors.New("-workers and -argon2-threads must be positive (threads ≤ 255)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	salts := make([][]byte, workers)
	for i := range salts {
		salts[i] = bytes.Repeat([]byte{byte(i + 1)}, 16)
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for range 10_000 {
		if !in.Scan() {
			return in.Err()
		}
		f := strings.Fields(in.Text())
		if len(f) == 1 && f[0] == "quit" {
			return nil
		}
		if len(f) != 3 || f[0] != "run" {
			return fmt.Errorf("bad command %q", in.Text())
		}
		warmup, err1 := time.ParseDuration(f[1])
		window, err2 := time.ParseDuration(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		var cpu0, cpu1, machine0, machine1 float64
		p := closedLoop(ctx, workers, warmup, window, o.maxOps, func(_ context.Context, w int) error {
			key := argon2.IDKey([]byte(benchPassword), salts[w], uint32(o.argon2Time), uint32(o.argon2Memory), uint8(o.argon2Threads), 32)
			if len(key) != 32 {
				return errors.New("short key")
			}
			return nil
		}, func() { cpu0, machine0 = selfCPU(), machineCPU() }, func() { cpu1, machine1 = selfCPU(), machineCPU() })
		if p.Errs > 0 {
			return errors.New(p.FirstErr)
		}
		r := baselineResult{Hashes: p.Ops, Seconds: p.Window.Seconds(), CPU: cpu1 - cpu0, Machine: machine1 - machine0}
		for _, d := range p.Lat {
			r.Lat = append(r.Lat, int64(d))
		}
		if err := out.Encode(r); err != nil {
			return err
		}
	}
	return errors.New("too many commands")
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// ---------------------------------------------------------------------------
// Child mode: no-op HTTP server

// noopServer serves 200 with an empty body to every request, with the same
// http.Server limits as Gatehouse. It prints "listening ADDR" once ready and
// exits on SIGTERM/SIGINT, when its stdin closes (the parent is gone), or
// after maxLife.
func noopServer(addr string, maxLife time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback address %q", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	stop := make(chan struct{}, 3)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() { <-sigc; stop <- struct{}{} }()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop <- struct{}{} }()
	go func() { time.Sleep(maxLife); stop <- struct{}{} }()
	go func() { <-stop; _ = srv.Close() }()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ---------------------------------------------------------------------------
// Children

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, once done is closed
	once sync.Once
}

var (
	childMu  sync.Mutex
	children = map[*child]struct{}{}
)

// launch starts cmd and registers it for stopAll.
func launch(name string, cmd *exec.Cmd) (*child, error) {
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	childMu.Lock()
	children[c] = struct{}{}
	childMu.Unlock()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the child to exit (SIGTERM), kills it after 5 s, and waits at
// most 5 s more.
func (c *child) stop() {
	c.once.Do(func() {
		if !c.exited() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(5 * time.Second):
				_ = c.cmd.Process.Kill()
				select {
				case <-c.done:
				case <-time.After(5 * time.Second):
				}
			}
		}
		childMu.Lock()
		delete(children, c)
		childMu.Unlock()
	})
}

// stopAll stops every child still registered.
func stopAll() {
	childMu.Lock()
	list := make([]*child, 0, len(children))
	for c := range children {
		list = append(list, c)
	}
	childMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Go(c.stop)
	}
	wg.Wait()
}

// guard is deferred by every goroutine: a panic stops the children before
// it crashes the program.
func guard() {
	if v := recover(); v != nil {
		cleanup()
		panic(v)
	}
}

var (
	cleanupMu  sync.Mutex
	cleanupFns []func()
)

// atCleanup registers fn to run once the children are stopped.
func atCleanup(fn func()) {
	cleanupMu.Lock()
	cleanupFns = append(cleanupFns, fn)
	cleanupMu.Unlock()
}

// removeOnCleanup registers a temporary directory for cleanup.
func removeOnCleanup(dir string) { atCleanup(func() { _ = os.RemoveAll(dir) }) }

// cleanup stops every child, then runs what atCleanup registered, newest
// first (the servers must be gone before their databases), once.
func cleanup() {
	stopAll()
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for _, fn := range slices.Backward(cleanupFns) {
		fn()
	}
	cleanupFns = nil
}

// lineChild is loadgen re-executed in a child mode, talking in lines over
// its stdin and stdout. Closing stdin (or loadgen dying) ends it.
type lineChild struct {
	*child
	in    *os.File
	lines chan string
}

func startSelf(ctx context.Context, name string, args ...string) (*lineChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(err, inR.Close(), inW.Close())
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	c, err := launch(name, cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		return nil, errors.Join(err, inW.Close(), outR.Close())
	}
	lc := &lineChild{child: c, in: inW, lines: make(chan string, 16)}
	go func() { <-c.done; inW.Close() }()
	go func() {
		defer close(lc.lines)
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			lc.lines <- sc.Text()
		}
	}()
	return lc, nil
}

// readLine waits at most d for the child's next line.
func (lc *lineChild) readLine(ctx context.Context, d time.Duration) (string, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case s, ok := <-lc.lines:
		if !ok {
			select {
			case <-lc.done:
				return "", fmt.Errorf("%s exited: %v", lc.name, lc.err)
			case <-time.After(5 * time.Second):
				return "", fmt.Errorf("%s closed its output", lc.name)
			}
		}
		return s, nil
	case <-t.C:
		return "", fmt.Errorf("%s: no answer within %s", lc.name, d)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// startNoop starts the no-op server child; it returns it and its base URL.
func startNoop(ctx context.Context, o options) (*lineChild, string, error) {
	lc, err := startSelf(ctx, "no-op server", "-noop-server", "-addr", "127.0.0.1:0", "-timeout", o.timeout.String())
	if err != nil {
		return nil, "", err
	}
	s, err := lc.readLine(ctx, 10*time.Second)
	if err != nil {
		lc.stop()
		return nil, "", err
	}
	addr, ok := strings.CutPrefix(s, "listening ")
	if !ok {
		lc.stop()
		return nil, "", fmt.Errorf("no-op server: unexpected output %q", s)
	}
	return lc, "http://" + addr, nil
}

// startArgon2 starts the argon2id baseline child with NumCPU workers.
func startArgon2(ctx context.Context, o options) (*lineChild, error) {
	return startSelf(ctx, "argon2id baseline", "-argon2-baseline",
		"-workers", strconv.Itoa(runtime.NumCPU()),
		"-argon2-memory", strconv.FormatUint(uint64(o.argon2Memory), 10),
		"-argon2-time", strconv.FormatUint(uint64(o.argon2Time), 10),
		"-argon2-threads", strconv.FormatUint(uint64(o.argon2Threads), 10),
		"-max-ops", strconv.Itoa(o.maxOps), "-timeout", o.timeout.String())
}

// argon2Slice has the baseline child run one slice.
func argon2Slice(ctx context.Context, lc *lineChild, o options) (*phase, error) {
	c0 := selfCPU()
	if _, err := fmt.Fprintf(lc.in, "run %s %s\n", o.warmup, o.slice); err != nil {
		return nil, fmt.Errorf("argon2id baseline: %w", err)
	}
	s, err := lc.readLine(ctx, o.warmup+o.slice+time.Minute)
	if err != nil {
		return nil, err
	}
	var r baselineResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("argon2id baseline: output %.200q: %w", s, err)
	}
	p := &phase{Workers: runtime.NumCPU(), Ops: r.Hashes, Window: time.Duration(r.Seconds * float64(time.Second)),
		CPU: cpuWindow{Server: r.CPU, Client: selfCPU() - c0, Machine: r.Machine}}
	for _, ns := range r.Lat {
		p.Lat = append(p.Lat, time.Duration(ns))
	}
	return p, nil
}

type gatehouse struct {
	*child
	base    string
	logPath string
}

// startGatehouse starts the server on a free loopback port with a fresh
// data directory and waits for /readyz. GATEHOUSE_* variables of the
// environment are dropped so that nothing but these flags configures it;
// database (a postgres:// URL, or "" for SQLite in the data directory) is
// passed as GATEHOUSE_DATABASE, so that it is not on the command line.
func startGatehouse(ctx context.Context, o options, dir, name, level, database string) (*gatehouse, error) {
	var lastErr error
	for attempt := range 3 { // the free port may be taken before the server binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		data := filepath.Join(dir, fmt.Sprintf("data-%s-%d", name, attempt))
		args := []string{"serve", "--dev",
			"--addr", addr, "--data-dir", data, "--log-level", level,
			"--login-attempts-per-ip", bigLimit,
			"--login-failures-per-account", bigLimit,
			"--signups-per-ip", bigLimit,
			"--access-token-ttl", "1h",
			"--argon2-memory", strconv.FormatUint(uint64(o.argon2Memory), 10),
			"--argon2-time", strconv.FormatUint(uint64(o.argon2Time), 10),
			"--argon2-threads", strconv.FormatUint(uint64(o.argon2Threads), 10),
		}
		if o.hashConcurrency > 0 {
			args = append(args, "--hash-concurrency", strconv.Itoa(o.hashConcurrency))
		}
		logPath := filepath.Join(dir, fmt.Sprintf("gatehouse-%s-%d.log", name, attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, o.gatehouse, args...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GATEHOUSE_") })
		if database != "" {
			cmd.Env = append(cmd.Env, "GATEHOUSE_DATABASE="+database)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		c, err := launch("gatehouse", cmd)
		logf.Close()
		if err != nil {
			return nil, err
		}
		g := &gatehouse{child: c, base: "http://" + addr, logPath: logPath}
		if err := waitReady(ctx, g); err != nil {
			c.stop()
			lastErr = fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, logPath, tail(logPath, 2048))
			continue
		}
		return g, nil
	}
	return nil, lastErr
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls /readyz every 50 ms for at most 30 s.
func waitReady(ctx context.Context, g *gatehouse) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	for range 600 {
		if g.exited() {
			return fmt.Errorf("gatehouse exited during start: %v", g.err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/readyz", nil)
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			break
		}
	}
	return errors.New("gatehouse not ready within 30s")
}

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}

// ---------------------------------------------------------------------------
// /proc

// procStatus returns VmRSS and VmHWM of pid in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// clockTick is USER_HZ, which is 100 on every Linux ABI Go supports.
const clockTick = 100

// procCPU returns the CPU seconds (user + system) pid has used.
func procCPU(pid int) float64 {
	_, cpu, _ := procStat(pid)
	return cpu
}

// procStat returns the command name of pid and the CPU seconds (user +
// system) it has used.
func procStat(pid int) (comm string, cpu float64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return "", 0, false
	}
	f := strings.Fields(string(b[j+1:]))
	if len(f) < 13 {
		return "", 0, false
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return string(b[i+1 : j]), (u + s) / clockTick, true
}

// postgresCPU returns the CPU seconds used so far by each process named
// postgres (the PostgreSQL server's backends, WAL writer, checkpointer…).
func postgresCPU() map[int]float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	m := map[int]float64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, cpu, ok := procStat(pid); ok && comm == "postgres" {
			m[pid] = cpu
		}
	}
	return m
}

// machineCPU returns the busy CPU seconds of the whole machine (user, nice,
// system, irq, softirq, steal) from /proc/stat.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	return busy / clockTick
}

// rssSampler records the largest VmRSS of pid every 100 ms until stopped.
type rssSampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pid int, limit time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer guard()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		deadline := time.After(limit)
		for range int(limit/(100*time.Millisecond)) + 1 {
			if rss, _, err := procStatus(pid); err == nil && rss > s.max.Load() {
				s.max.Store(rss)
			}
			select {
			case <-s.stop:
				return
			case <-deadline:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() int64 {
	close(s.stop)
	<-s.done
	return s.max.Load()
}

// ---------------------------------------------------------------------------
// HTTP client

// newClient returns a keep-alive client holding up to conns connections to
// one host, without proxy, compression or cookie jar (cookies are sent by
// hand, so every worker controls which session it uses).
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// call sends a request with a Cookie header unless cookie is empty (see
// send).
func call(ctx context.Context, c *http.Client, method, url, cookie string, body []byte, want int) (*http.Response, error) {
	return send(ctx, c, method, url, "Cookie", cookie, body, want, nil)
}

// send sends a request, with the header name set to value unless value is
// empty, and drains the response so the connection is reused; if out is
// not nil, the JSON response body is decoded into it. It returns the
// response (body consumed) or an error for a status other than want.
func send(ctx context.Context, c *http.Client, method, url, name, value string, body []byte, want int, out any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if value != "" {
		req.Header.Set(name, value)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s %s: status %d: %s", method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
			return nil, fmt.Errorf("%s %s: response: %w", method, req.URL.Path, err)
		}
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	return resp, nil
}

func sessionCookie(resp *http.Response) (string, error) {
	for _, ck := range resp.Cookies() {
		if ck.Name == "gh_session" && ck.Value != "" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", errors.New("no gh_session cookie in the response")
}

func credentials(i int) []byte {
	b, _ := json.Marshal(map[string]string{
		"email":    fmt.Sprintf("loadgen-%d@example.com", i),
		"password": benchPassword,
	})
	return b
}

// tokenCredentials is the body of a token-mode sign-up of a native client.
func tokenCredentials(i int) []byte {
	b, _ := json.Marshal(map[string]string{
		"email":    fmt.Sprintf("loadgen-token-%d@example.com", i),
		"password": benchPassword,
		"mode":     "token",
		"client":   "native",
	})
	return b
}

// ---------------------------------------------------------------------------
// The run

// series is one thing measured slice by slice: a baseline or a server.
type series struct {
	name   string
	target float64                                   // of the ratio to the baseline; 0: for context only
	run    func(ctx context.Context) (*phase, error) // one slice
	slices []*phase                                  // one per round
}

// total merges the slices.
func (s *series) total() *phase {
	t := &phase{}
	for _, p := range s.slices {
		t.Workers = p.Workers
		t.Ops += p.Ops
		t.Errs += p.Errs
		if t.FirstErr == "" {
			t.FirstErr = p.FirstErr
		}
		t.Window += p.Window
		t.Lat = append(t.Lat, p.Lat...)
		t.CPU.Server += p.CPU.Server
		t.CPU.Client += p.CPU.Client
		t.CPU.Machine += p.CPU.Machine
		t.CPU.DB += p.CPU.DB
	}
	slices.Sort(t.Lat)
	return t
}

// interleave runs rounds rounds of one slice of every series, rotating the
// order so that each series takes each position as often as possible.
func interleave(ctx context.Context, rounds int, ss []*series) error {
	for r := range rounds {
		for i := range ss {
			s := ss[(r+i)%len(ss)]
			p, err := s.run(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.slices = append(s.slices, p)
		}
	}
	return nil
}

// group is a baseline and the series measured against it, interleaved.
type group struct {
	title    string  // what the series measure
	unit     string  // of the series' rates
	baseUnit string  // of the baseline's rate
	target   float64 // of the series added with add
	// dur formats CPU per operation and latencies.
	dur    func(time.Duration) string
	series []*series // the baseline first
}

func (g *group) add(name string, run func(ctx context.Context) (*phase, error)) {
	g.series = append(g.series, &series{name: name, target: g.target, run: run})
}

// sliceOf returns the run of a series: one slice of op on workers workers,
// accounting the CPU of the process pid, and of PostgreSQL if db.
func sliceOf(o options, workers, pid int, db bool, op func(ctx context.Context, w int) error) func(context.Context) (*phase, error) {
	return func(ctx context.Context) (*phase, error) {
		var c0, c1 cpuSnap
		p := closedLoop(ctx, workers, o.warmup, o.slice, o.maxOps, op, func() { c0 = snap(pid, db) }, func() { c1 = snap(pid, db) })
		p.CPU = c0.to(c1)
		return p, ctx.Err()
	}
}

// server is one Gatehouse child and the accounts created on it.
type server struct {
	*gatehouse
	backend string // "sqlite" or "postgres"
	level   string
	dbName  string // the PostgreSQL database
	client  *http.Client
	creds   [][]byte // cookie-mode accounts, one per sign-in worker
	cookies []string // their sign-up sessions, used for GET /v1/me
	// Token-mode sessions, one per refresh client: the latest refresh token
	// of each rotation chain (worker i alone uses chains[i]) and the latest
	// access token.
	chains, access []string
	// minted holds, per chain, the access tokens handed out (all valid for
	// the whole run), up to maxMinted in all; nil: none are kept.
	minted [][]string
	// family counts the refresh tokens of each chain's session (the server
	// keeps every one of them).
	family []int
	log    logSummary

	rssFresh, rssIdle, rssPeak, hwmSignIn, rssAfter, hwmAfter int64
}

func (s *server) label() string { return s.backend + " " + s.level }

// slice is sliceOf for this server; it fails once the server has exited.
func (s *server) slice(o options, workers int, op func(ctx context.Context, w int) error) func(context.Context) (*phase, error) {
	run := sliceOf(o, workers, s.pid(), s.backend == "postgres", op)
	return func(ctx context.Context) (*phase, error) {
		p, err := run(ctx)
		if err == nil {
			err = s.exitErr()
		}
		return p, err
	}
}

// exitErr describes the server's exit, if it has exited.
func (s *server) exitErr() error {
	if !s.exited() {
		return nil
	}
	return fmt.Errorf("gatehouse [%s] exited during the run (%v; status 0 is a shutdown on SIGTERM or SIGINT)\n%s", s.label(), s.err, tail(s.logPath, 2048))
}

// tokenResponse is the part of a token-mode answer that loadgen uses.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// keep stores t as the latest tokens of chain i.
func (s *server) keep(i int, t tokenResponse) error {
	if t.AccessToken == "" || t.RefreshToken == "" {
		return errors.New("no access_token or refresh_token in the answer")
	}
	s.chains[i], s.access[i] = t.RefreshToken, t.AccessToken
	if s.family != nil {
		s.family[i]++
	}
	if s.minted != nil && len(s.minted[i]) < maxMinted/len(s.minted) {
		s.minted[i] = append(s.minted[i], t.AccessToken)
	}
	return nil
}

// maxMinted bounds the access tokens kept per server (about 0.6 KiB each).
const maxMinted = 60_000

// verifierCache is the number of verified tokens Gatehouse's verifier
// remembers (the SDK's default); a forward-auth with a remembered token
// skips the signature check.
const verifierCache = 10_000

// distinct returns the bearer headers of the access tokens minted so far.
func (s *server) distinct() []string {
	var out []string
	for _, m := range s.minted {
		for _, at := range m {
			out = append(out, "Bearer "+at)
		}
	}
	return out
}

// tokenSignup signs up token-mode account i as a native client: the start
// of chain i.
func (s *server) tokenSignup(ctx context.Context, i int) error {
	var t tokenResponse
	if _, err := send(ctx, s.client, http.MethodPost, s.base+"/v1/signup", "", "", tokenCredentials(i), http.StatusCreated, &t); err != nil {
		return err
	}
	return s.keep(i, t)
}

// rotate presents the latest refresh token of worker w's chain and keeps
// its successor.
func (s *server) rotate(ctx context.Context, w int) error {
	var t tokenResponse
	if _, err := send(ctx, s.client, http.MethodPost, s.base+"/v1/token/refresh", "", "", refreshBody(s.chains[w]), http.StatusOK, &t); err != nil {
		return err
	}
	return s.keep(w, t)
}

// noopRefreshToken has the size of a real refresh token ("ghr_" and 43
// base64url characters).
var noopRefreshToken = "ghr_" + strings.Repeat("A", 43)

// refreshBody is the JSON body of a native client's refresh.
func refreshBody(token string) []byte { return []byte(`{"refresh_token":"` + token + `"}`) }

type report struct {
	opts    options
	groups  []*group
	servers []*server
}

// measure runs g's rounds and adds it to the report.
func (rep *report) measure(ctx context.Context, g *group) error {
	rep.groups = append(rep.groups, g)
	fmt.Fprintf(os.Stderr, "loadgen: %s vs %s, %d rounds…\n", g.title, g.series[0].name, rep.opts.rounds)
	return interleave(ctx, rep.opts.rounds, g.series)
}

func run(ctx context.Context, o options) (*report, error) {
	dir, err := os.MkdirTemp("", "gatehouse-loadgen-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "loadgen: keeping", dir)
	} else {
		removeOnCleanup(dir)
		defer cleanup()
	}
	rep := &report{opts: o}
	sc := o.scenarios

	// What the scenarios need: accounts of each kind on every server, the
	// backends, the baseline children.
	cookieAccounts, tokenAccounts := 0, 0
	if sc[scLogin] || sc[scMe] {
		cookieAccounts = o.loginConcurrency
	}
	if sc[scForward] {
		tokenAccounts = 1
	}
	if sc[scRefresh] {
		tokenAccounts = max(tokenAccounts, slices.Max(o.refreshClients))
	}
	backends := []string{"sqlite"}
	if sc[scRefresh] && o.postgres != "" {
		backends = append(backends, "postgres")
	}

	fmt.Fprintln(os.Stderr, "loadgen: starting the baseline children and", len(backends)*len(o.logLevels), "Gatehouse server(s)…")
	var a2, noop *lineChild
	var noopBase string
	if sc[scLogin] {
		if a2, err = startArgon2(ctx, o); err != nil {
			return nil, err
		}
		defer a2.stop()
	}
	if sc[scMe] || sc[scForward] || sc[scRefresh] {
		if noop, noopBase, err = startNoop(ctx, o); err != nil {
			return nil, err
		}
		defer noop.stop()
	}
	var sqlite []*server // login, me and forward-auth run on SQLite only
	for _, backend := range backends {
		for _, level := range o.logLevels {
			s, err := startServer(ctx, o, dir, backend, level, cookieAccounts, tokenAccounts)
			if s != nil {
				rep.servers = append(rep.servers, s)
				defer s.stop()
				defer s.client.CloseIdleConnections()
				if backend == "sqlite" {
					sqlite = append(sqlite, s)
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	noopClient := newClient(max(o.conns, slices.Max(o.refreshClients)))
	defer noopClient.CloseIdleConnections()
	// noopOp sends the same request to the no-op server as a series does
	// to Gatehouse.
	noopOp := func(method, path, header, value string, body func() []byte) func(ctx context.Context, w int) error {
		return func(ctx context.Context, w int) error {
			_, err := send(ctx, noopClient, method, noopBase+path, header, value, body(), http.StatusOK, nil)
			return err
		}
	}
	noBody := func() []byte { return nil }

	// 1. Sign-in against raw argon2id.
	if sc[scLogin] {
		g := &group{title: "sign-in", unit: "sign-in/s", baseUnit: "hash/s", target: 0.9, dur: ms}
		g.add("raw argon2id", func(ctx context.Context) (*phase, error) { return argon2Slice(ctx, a2, o) })
		var samplers []*rssSampler
		perRound := time.Duration(len(sqlite)+1) * (o.warmup + o.slice + time.Second)
		for _, s := range sqlite {
			g.add("sign-in ["+s.level+"]", s.slice(o, o.loginConcurrency, func(ctx context.Context, w int) error {
				resp, err := call(ctx, s.client, http.MethodPost, s.base+"/v1/login", "", s.creds[w], http.StatusOK)
				if err != nil {
					return err
				}
				_, err = sessionCookie(resp)
				return err
			}))
			samplers = append(samplers, sampleRSS(s.pid(), time.Duration(o.rounds)*perRound+time.Minute))
		}
		err = rep.measure(ctx, g)
		for i, s := range sqlite {
			s.rssPeak = samplers[i].finish()
			_, s.hwmSignIn, _ = procStatus(s.pid())
		}
		if err != nil {
			return rep, err
		}
	}

	// 2. GET /v1/me against a no-op handler.
	if sc[scMe] {
		g := &group{title: "GET /v1/me", unit: "req/s", baseUnit: "req/s", target: 0.5, dur: us}
		// The same request as GET /v1/me, cookie included.
		g.add("no-op", sliceOf(o, o.conns, noop.pid(), false, noopOp(http.MethodGet, "/v1/me", "Cookie", "gh_session=ghs_noop", noBody)))
		for _, s := range sqlite {
			g.add("GET /v1/me ["+s.level+"]", s.slice(o, o.conns, func(ctx context.Context, w int) error {
				_, err := call(ctx, s.client, http.MethodGet, s.base+"/v1/me", s.cookies[w%len(s.cookies)], nil, http.StatusOK)
				return err
			}))
		}
		err = rep.measure(ctx, g)
		for _, s := range sqlite {
			s.rssAfter, s.hwmAfter, _ = procStatus(s.pid())
		}
		if err != nil {
			return rep, err
		}
	}

	// 3. Refresh-token rotations, for context against a no-op handler
	// answering a POST with the same JSON body.
	if sc[scRefresh] {
		for _, n := range o.refreshClients {
			g := &group{title: fmt.Sprintf("refresh ×%d", n), unit: "rot/s", baseUnit: "req/s", dur: dur}
			g.add(fmt.Sprintf("no-op POST ×%d", n), sliceOf(o, n, noop.pid(), false, noopOp(http.MethodPost, "/v1/token/refresh", "", "",
				func() []byte { return refreshBody(noopRefreshToken) })))
			for _, s := range rep.servers {
				g.add(fmt.Sprintf("refresh ×%d [%s]", n, s.label()), s.slice(o, n, s.rotate))
			}
			if err := rep.measure(ctx, g); err != nil {
				return rep, err
			}
		}
	}

	// 4. Token-mode forward-auth against a no-op handler: with the access
	// token of each connection's session (the verifier remembers them after
	// the first request) and, after the refresh scenario, cycling through
	// every access token it minted, more than the verifier remembers, so
	// that most requests verify a signature.
	if sc[scForward] {
		g := &group{title: "GET /v1/forward-auth", unit: "req/s", baseUnit: "req/s", target: 0.6, dur: us}
		// The same request, with a real access token's Authorization header.
		g.add("no-op", sliceOf(o, o.conns, noop.pid(), false, noopOp(http.MethodGet, "/v1/forward-auth", "Authorization", "Bearer "+sqlite[0].access[0], noBody)))
		forwardAuth := func(s *server, bearer []string) func(ctx context.Context) (*phase, error) {
			next := make([]int, o.conns) // worker w's k-th request uses bearer[w + k·conns]
			return s.slice(o, o.conns, func(ctx context.Context, w int) error {
				i := (w + next[w]*o.conns) % len(bearer)
				next[w]++
				resp, err := send(ctx, s.client, http.MethodGet, s.base+"/v1/forward-auth", "Authorization", bearer[i], nil, http.StatusOK, nil)
				if err == nil && resp.Header.Get("X-Gatehouse-User") == "" {
					err = errors.New("forward-auth: 200 without X-Gatehouse-User")
				}
				return err
			})
		}
		for _, s := range sqlite {
			bearer := make([]string, min(o.conns, len(s.access)))
			for i := range bearer {
				bearer[i] = "Bearer " + s.access[i]
			}
			g.add("GET /v1/forward-auth ["+s.level+"]", forwardAuth(s, bearer))
		}
		for _, s := range sqlite {
			bearer := s.distinct()
			if len(bearer) <= verifierCache {
				fmt.Fprintf(os.Stderr, "loadgen: forward-auth with distinct tokens [%s] skipped: %d minted, more than %d needed (run the refresh scenario first, long enough)\n",
					s.level, len(bearer), verifierCache)
				continue
			}
			g.series = append(g.series, &series{name: fmt.Sprintf("GET /v1/forward-auth, %d tokens [%s]", len(bearer), s.level),
				run: forwardAuth(s, bearer)})
		}
		if err := rep.measure(ctx, g); err != nil {
			return rep, err
		}
	}

	for _, s := range rep.servers {
		if err := s.exitErr(); err != nil {
			return rep, err
		}
	}
	for _, s := range rep.servers {
		s.log = scanLog(s.logPath)
	}
	return rep, nil
}

// startServer starts a Gatehouse on backend at level, measures its memory
// fresh and after one sign-up, and signs up the remaining accounts:
// cookies cookie-mode accounts, then tokens token-mode ones (native
// clients, each the start of a rotation chain).
func startServer(ctx context.Context, o options, dir, backend, level string, cookies, tokens int) (*server, error) {
	database, dbName := "", ""
	if backend == "postgres" {
		var err error
		if database, dbName, err = createDatabase(ctx, o.postgres, o.keep); err != nil {
			return nil, err
		}
	}
	g, err := startGatehouse(ctx, o, dir, backend+"-"+level, level, database)
	if err != nil {
		return nil, err
	}
	s := &server{gatehouse: g, backend: backend, level: level, dbName: dbName,
		client: newClient(max(o.loginConcurrency, o.conns, slices.Max(o.refreshClients))),
		creds:  make([][]byte, cookies), cookies: make([]string, cookies),
		chains: make([]string, tokens), access: make([]string, tokens), minted: make([][]string, tokens), family: make([]int, tokens)}
	for i := range s.creds {
		s.creds[i] = credentials(i)
	}
	signup := func(i int) error {
		if i < cookies {
			resp, err := call(ctx, s.client, http.MethodPost, s.base+"/v1/signup", "", s.creds[i], http.StatusCreated)
			if err != nil {
				return err
			}
			s.cookies[i], err = sessionCookie(resp)
			return err
		}
		return s.tokenSignup(ctx, i-cookies)
	}
	time.Sleep(300 * time.Millisecond)
	if s.rssFresh, _, err = procStatus(s.pid()); err != nil {
		return s, err
	}
	if cookies+tokens == 0 {
		return s, nil
	}
	if err := signup(0); err != nil {
		return s, err
	}
	time.Sleep(time.Second)
	if s.rssIdle, _, err = procStatus(s.pid()); err != nil {
		return s, err
	}
	var wg sync.WaitGroup
	errs := make([]error, cookies+tokens)
	for i := 1; i < len(errs); i++ {
		wg.Go(func() { defer guard(); errs[i] = signup(i) })
	}
	wg.Wait()
	return s, errors.Join(errs...)
}

// ---------------------------------------------------------------------------
// Report

func (rep *report) invalid() bool {
	for _, g := range rep.groups {
		for _, s := range g.series {
			for _, p := range s.slices {
				if p.Errs > 0 {
					return true
				}
			}
		}
	}
	return false
}

// cpuPerOp is the CPU of the measured process (with PostgreSQL's) and
// loadgen per operation.
func cpuPerOp(p *phase) float64 {
	return (p.CPU.Server + p.CPU.DB + p.CPU.Client) / float64(max(1, p.Ops))
}

func rate(r float64) string {
	if r >= 1000 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

func mib(b int64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

// dur is µs below 1 ms, else ms.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return us(d)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return ms(d)
	}
}

func verdict(ratio, target float64, errs int64) string {
	switch {
	case errs > 0:
		return "INVALID (errors)"
	case target <= 0:
		return "(for context)"
	case ratio >= target:
		return fmt.Sprintf("ok (target ≥ %.2f)", target)
	default:
		return fmt.Sprintf("MISSED (target ≥ %.2f)", target)
	}
}

func (rep *report) print(out io.Writer) {
	o := rep.opts
	sc := o.scenarios
	fmt.Fprintf(out, "\nGatehouse loadgen — %s/%s, NumCPU=%d, %s, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Fprintf(out, "%d rounds × %s measured (+%s warm-up) per series\n", o.rounds, o.slice, o.warmup)
	if sc[scLogin] {
		fmt.Fprintf(out, "sign-in: argon2id m=%d KiB t=%d p=%d, %d workers\n", o.argon2Memory, o.argon2Time, o.argon2Threads, o.loginConcurrency)
	}
	if sc[scMe] || sc[scForward] {
		fmt.Fprintf(out, "/v1/me, /v1/forward-auth and their no-op: %d connections\n", o.conns)
	}
	if sc[scForward] {
		fmt.Fprintf(out, "forward-auth: each connection repeats one access token (the verifier remembers it after the first request); "+
			"the \"N tokens\" series cycle through the access tokens the refresh scenario minted, more than the verifier's %d-entry cache, "+
			"so that most requests verify an Ed25519 signature; only the repeated-token series have a target\n", verifierCache)
	}
	if sc[scRefresh] {
		pg := "not measured (no -postgres)"
		for _, s := range rep.servers {
			if s.backend == "postgres" {
				pg = "a fresh database per server"
			}
		}
		var counts []string
		for _, n := range o.refreshClients {
			counts = append(counts, strconv.Itoa(n))
		}
		fmt.Fprintf(out, "refresh: %s clients (one token-mode session, rotation chain and connection each); PostgreSQL: %s\n",
			strings.Join(counts, ", "), pg)
	}
	fmt.Fprintln(out, "cores = CPU of the measured process + loadgen (+ every postgres process, \"pg\") over the windows; other = rest of the machine (noise)")
	fmt.Fprintln(out, "CPU-normalized ratio = (process + pg + loadgen) CPU per op of the baseline ÷ that of the series: the throughput ratio if both had the cores to themselves")
	fmt.Fprintln(out)

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "series\trate\tper round\tcores\tother\tCPU/op (measured process)\tlatency p50 / p99 / max\terrors")
	for _, g := range rep.groups {
		for i, s := range g.series {
			t := s.total()
			if len(s.slices) == 0 {
				continue
			}
			unit := g.unit
			if i == 0 {
				unit = g.baseUnit
			}
			secs := t.Window.Seconds()
			perOp := func(cpu float64) time.Duration {
				return time.Duration(float64(time.Second) * cpu / float64(max(1, t.Ops)))
			}
			cores, cpuOp := fmt.Sprintf("%.2f + %.2f", t.CPU.Server/secs, t.CPU.Client/secs), g.dur(perOp(t.CPU.Server))
			if t.CPU.DB > 0 {
				cores += fmt.Sprintf(" + %.2f pg", t.CPU.DB/secs)
				cpuOp += " + " + g.dur(perOp(t.CPU.DB)) + " pg"
			}
			var rounds []string
			for _, p := range s.slices {
				rounds = append(rounds, rate(p.Rate()))
			}
			fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%.2f\t%s\t%s / %s / %s\t%d\n", s.name, rate(t.Rate()), unit, strings.Join(rounds, " "), cores, t.CPU.Other()/secs,
				cpuOp, g.dur(t.Pct(0.5)), g.dur(t.Pct(0.99)), g.dur(t.Pct(1)), t.Errs)
		}
	}
	w.Flush()
	fmt.Fprintln(out)

	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ratio\tvalue\tper round (min–max)\tverdict\tCPU-normalized")
	for _, g := range rep.groups {
		if len(g.series) < 2 || len(g.series[0].slices) == 0 {
			continue
		}
		base := g.series[0]
		bt := base.total()
		for _, s := range g.series[1:] {
			t := s.total()
			if len(s.slices) == 0 {
				continue
			}
			lo, hi := 1e9, 0.0
			for r, p := range s.slices {
				if r < len(base.slices) && base.slices[r].Ops > 0 {
					x := p.Rate() / base.slices[r].Rate()
					lo, hi = min(lo, x), max(hi, x)
				}
			}
			ratio := t.Rate() / bt.Rate()
			fmt.Fprintf(w, "%s ÷ %s\t%.3f\t%.3f–%.3f\t%s\t%.3f\n", s.name, base.name, ratio, lo, hi,
				verdict(ratio, s.target, t.Errs+bt.Errs), cpuPerOp(bt)/cpuPerOp(t))
		}
	}
	w.Flush()
	fmt.Fprintln(out)

	if sc[scLogin] {
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "server RSS\tfresh\tidle after 1 sign-up\tsign-in peak: max VmRSS / VmHWM\tafter /me: VmRSS / VmHWM")
		for _, s := range rep.servers {
			if s.rssPeak > 0 {
				fmt.Fprintf(w, "gatehouse [%s]\t%s\t%s\t%s / %s\t%s / %s\n", s.level,
					mib(s.rssFresh), mib(s.rssIdle), mib(s.rssPeak), mib(s.hwmSignIn), mib(s.rssAfter), mib(s.hwmAfter))
			}
		}
		w.Flush()
		fmt.Fprintln(out)
	}

	for _, s := range rep.servers {
		l := s.log
		fmt.Fprintf(out, "server log [%s]: %d warn, %d error lines, %d responses with status 5xx", s.label(), l.warn, l.errs, l.status5xx)
		if s.dbName != "" {
			fmt.Fprintf(out, " (database %s)", s.dbName)
		}
		if len(s.family) > 0 {
			fmt.Fprintf(out, "; longest refresh-token family %d tokens", slices.Max(s.family))
		}
		fmt.Fprintln(out)
		if l.first != "" {
			fmt.Fprintf(out, "  first: %s\n", l.first)
		}
	}
	for _, g := range rep.groups {
		for _, s := range g.series {
			if t := s.total(); t.FirstErr != "" {
				fmt.Fprintf(out, "%s: %d errors, first: %s\n", s.name, t.Errs, t.FirstErr)
			}
		}
	}
}

// logSummary counts what went wrong according to a server's JSON log.
type logSummary struct {
	warn, errs, status5xx int
	first                 string // the first warning or error line, clipped
}

// scanLog reads a server's log. Access-log lines ("status":5xx) exist only
// at level info and below; warnings and errors at every level used here.
func scanLog(path string) logSummary {
	var l logSummary
	f, err := os.Open(path)
	if err != nil {
		l.first = err.Error()
		return l
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		isWarn, isErr := bytes.Contains(line, []byte(`"level":"WARN"`)), bytes.Contains(line, []byte(`"level":"ERROR"`))
		switch {
		case isWarn:
			l.warn++
		case isErr:
			l.errs++
		}
		if (isWarn || isErr) && l.first == "" {
			l.first = string(line[:min(len(line), 400)])
		}
		if bytes.Contains(line, []byte(`"status":5`)) {
			l.status5xx++
		}
	}
	return l
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
