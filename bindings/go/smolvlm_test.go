package smolvlm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	root   = filepath.Join("..", "..")
	model  = filepath.Join(root, "tests", "fixtures", "models", "tiny-256m")
	images = filepath.Join(root, "tests", "fixtures", "images")
)

func cliText(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "target", "release", "smolvlm"),
		append([]string{"-d", model, "--json", "--silent"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cli: %v", err)
	}
	var j struct{ Text string }
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatal(err)
	}
	return j.Text
}

func load(t *testing.T) (*Model, *Context) {
	t.Helper()
	m, err := LoadModel(model, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func TestTextAndImagesMatchCLI(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	got, err := c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 16})
	if err != nil || got != cliText(t, "-p", "Tell me a story.", "--max-tokens", "16") {
		t.Fatalf("text-only: %q %v", got, err)
	}
	png := filepath.Join(images, "square.png")
	want := cliText(t, "-i", png, "-p", "What is it?", "--max-tokens", "12")
	raw, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	ppm, err := os.ReadFile(filepath.Join(images, "square.ppm"))
	if err != nil {
		t.Fatal(err)
	}
	// Binary PPM: "P6", width, height, maxval separated by single whitespace, then the pixels.
	var w, h, maxval int
	if _, err := fmt.Sscan(string(bytes.TrimPrefix(ppm[:32], []byte("P6"))), &w, &h, &maxval); err != nil ||
		maxval != 255 || w*h == 0 || len(ppm) < w*h*3 {
		t.Fatalf("square.ppm: header %q (%v)", ppm[:16], err)
	}
	pixels := ppm[len(ppm)-w*h*3:]
	fromFile, err1 := ImageFromFile(png)
	fromBytes, err2 := ImageFromBytes(raw)
	fromPixels, err3 := ImageFromPixels(pixels, w, h, 3, w*3)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, img := range []*Image{fromFile, fromBytes, fromPixels} {
		// Each call encodes its image (the stats below are checked as a fresh run's).
		got, err := c.Generate(Request{Prompt: "What is it?", Images: []*Image{img}, MaxTokens: 12,
			NoPromptCache: true})
		if err != nil || got != want {
			t.Fatalf("image source %d: %q, want %q (%v)", i, got, want, err)
		}
	}
	s, err := c.Stats()
	if err != nil || s.Tiles != 17 || s.DecodeTokens == 0 {
		t.Fatalf("stats %+v %v", s, err)
	}
}

func TestQuantizedLoadMatchesCLI(t *testing.T) {
	// Q4_0 changes this prompt's text on the tiny model, so a load that ignored it fails.
	plain := cliText(t, "-p", "Tell me a story.", "--max-tokens", "16")
	want := cliText(t, "-p", "Tell me a story.", "--max-tokens", "16", "--quantize", "q4_0")
	if want == plain {
		t.Fatal("the CLI's q4_0 text equals the unquantized one")
	}
	m, err := LoadModelQuantized(model, nil, QuantizeQ4_0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 16}); err != nil || got != want {
		t.Fatalf("q4_0: %q %v, CLI %q", got, err, want)
	}
	if _, err := LoadModelQuantized(model, nil, Quantize(9)); err == nil {
		t.Fatal("quantize 9 accepted")
	}
}

func TestPrecisionRunsAsAskedAndIsReported(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	for _, mode := range []string{"f32", "bf16", "int8"} {
		if _, err := c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 2, Precision: mode}); err != nil {
			t.Fatal(err)
		}
		if s, err := c.Stats(); err != nil || s.Precision != mode {
			t.Fatalf("%s: stats %+v %v", mode, s, err)
		}
	}
	if _, err := c.Generate(Request{Prompt: "hi", MaxTokens: 1, Precision: "fp8"}); err == nil {
		t.Fatal("fp8 accepted")
	}
}

func TestStreamingStopAndCancel(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	var sb strings.Builder
	text, err := c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 16,
		OnPiece: func(p string) bool { sb.WriteString(p); return true }})
	if err != nil || sb.String() != text {
		t.Fatalf("pieces %q vs text %q (%v)", sb.String(), text, err)
	}
	// Stop from the callback: returning false after stopAfter pieces delivers exactly stopAfter
	// pieces, succeeds, and returns their concatenation, a proper prefix of the full text.
	const stopAfter = 3
	var pieces []string
	stopped, err := c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 16,
		OnPiece: func(p string) bool { pieces = append(pieces, p); return len(pieces) < stopAfter }})
	if err != nil || len(pieces) != stopAfter || stopped != strings.Join(pieces, "") {
		t.Fatalf("stop after %d: %d pieces %q, text %q (%v)", stopAfter, len(pieces), pieces, stopped, err)
	}
	if !strings.HasPrefix(text, stopped) || len(stopped) >= len(text) {
		t.Fatalf("stopped text %q is not a proper prefix of the full text %q", stopped, text)
	}
	n := 0
	_, err = c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 16,
		OnPiece: func(string) bool { n++; return true }, Abort: func() bool { return n >= 3 }})
	if !errors.Is(err, ErrCancelled) || n != 3 {
		t.Fatalf("cancel: %v after %d pieces", err, n)
	}
	if _, err := LoadModel(model, func(float32) bool { return false }); !errors.Is(err, ErrCancelled) {
		t.Fatalf("load cancel: %v", err)
	}
}

func TestErrors(t *testing.T) {
	_, err := LoadModel("/nonexistent/model", nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != StatusIO || !strings.Contains(e.Message, "/nonexistent/model") {
		t.Fatalf("missing dir: %v", err)
	}
	if _, err := ImageFromBytes([]byte("not an image")); !errors.As(err, &e) || e.Status != StatusBadImage {
		t.Fatalf("bad bytes: %v", err)
	}
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	if _, err := c.Generate(Request{Prompt: "  "}); !errors.As(err, &e) || e.Status != StatusInvalidArg {
		t.Fatalf("empty prompt: %v", err)
	}
}

func TestOneModelManyGoroutines(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	want, err := c.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]string, 3)
	errs := make([]error, len(got))
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, err := m.NewContext()
			if err != nil {
				errs[i] = fmt.Errorf("NewContext: %w", err)
				return
			}
			defer ctx.Close()
			got[i], errs[i] = ctx.Generate(Request{Prompt: "Tell me a story.", MaxTokens: 12})
		}(i)
	}
	wg.Wait()
	for i, g := range got {
		if errs[i] != nil {
			t.Errorf("goroutine %d: %v", i, errs[i])
		} else if g != want {
			t.Errorf("goroutine %d: %q, want %q", i, g, want)
		}
	}
}

func TestChatTurnsEqualFreshRuns(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	fresh, err := m.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	img, err := ImageFromFile(filepath.Join(images, "square.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	chat := c.NewChat("", []*Image{img})
	prev := 0
	for i, q := range []string{"What is this?", "What colors are in it?", "Is there text?"} {
		got, err := chat.Ask(q, Request{MaxTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := c.Stats()
		msgs := chat.Messages()
		want, err := fresh.Generate(Request{Messages: msgs[:len(msgs)-1], Images: []*Image{img}, MaxTokens: 8,
			NoPromptCache: true})
		if err != nil || got != want {
			t.Fatalf("turn %d: %q, fresh %q (%v)", i+1, got, want, err)
		}
		if i > 0 && (s.Tiles != 0 || s.ReusedTokens < prev) {
			t.Fatalf("turn %d: %d tiles encoded, %d positions reused (previous prompt %d)", i+1, s.Tiles,
				s.ReusedTokens, prev)
		}
		prev = s.PrefillTokens + s.ReusedTokens
	}
	// The state restored into another context continues as this one does.
	state, err := c.SaveState()
	if err != nil || len(state) == 0 {
		t.Fatalf("save: %d bytes, %v", len(state), err)
	}
	if err := fresh.LoadState(state); err != nil {
		t.Fatal(err)
	}
	follow := append(chat.Messages(), map[string]interface{}{"role": "user", "content": "And the shapes?"})
	a, err1 := c.Generate(Request{Messages: follow, Images: []*Image{img}, MaxTokens: 8})
	b, err2 := fresh.Generate(Request{Messages: follow, Images: []*Image{img}, MaxTokens: 8})
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("restored %q, in memory %q (%v, %v)", b, a, err2, err1)
	}
	if err := fresh.LoadState(state[:len(state)-1]); !errors.Is(err, &Error{Status: StatusInvalidArg}) {
		t.Fatalf("a truncated state: %v", err)
	}
	if err := c.ResetPromptCache(); err != nil {
		t.Fatal(err)
	}
}
