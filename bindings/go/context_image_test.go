package smolvlm

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func decodePNG(t *testing.T, name string) image.Image {
	t.Helper()
	f, err := os.Open(filepath.Join(images, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Every image.Image layout gives the text the library's own decoding of the same file gives.
func TestImageFromImageMatchesTheFile(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	fromFile, err := ImageFromFile(filepath.Join(images, "square.png"))
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Prompt: "What is it?", MaxTokens: 12, NoPromptCache: true}
	req.Images = []*Image{fromFile}
	want, err := c.Generate(req)
	if err != nil {
		t.Fatal(err)
	}
	src := decodePNG(t, "square.png")
	b := src.Bounds()
	nrgba := image.NewNRGBA(b)
	draw.Draw(nrgba, b, src, b.Min, draw.Src)
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, src, b.Min, draw.Src)
	// A sub-image: bounds that do not start at 0 and rows longer than the view.
	big := image.NewNRGBA(image.Rect(-3, -5, b.Dx()+4, b.Dy()+2))
	draw.Draw(big, b.Add(image.Pt(-3, -5)), src, b.Min, draw.Src)
	sub := big.SubImage(b.Add(image.Pt(-3, -5)))
	for name, img := range map[string]image.Image{"decoded": src, "nrgba": nrgba, "rgba": rgba, "sub": sub} {
		im, err := ImageFromImage(img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		req.Images = []*Image{im}
		got, err := c.Generate(req)
		if err != nil || got != want {
			t.Fatalf("%s: %q (%v), want %q", name, got, err, want)
		}
	}
	if _, err := ImageFromImage(image.NewNRGBA(image.Rect(0, 0, 0, 4))); !errors.Is(err, &Error{Status: StatusInvalidArg}) {
		t.Fatalf("empty image: %v", err)
	}
}

// Translucent, grey and paletted pixels keep their straight colour values.
func TestImageFromImageConvertsLikePillow(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	const w, h = 40, 30
	straight := image.NewNRGBA(image.Rect(0, 0, w, h))
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(x*6 + y)
			straight.SetNRGBA(x, y, color.NRGBA{v, v, v, uint8(40 + x)})
			gray.SetGray(x, y, color.Gray{v})
		}
	}
	premultiplied := image.NewRGBA(straight.Bounds())
	draw.Draw(premultiplied, straight.Bounds(), straight, image.Point{}, draw.Src)
	paletted := image.NewPaletted(gray.Bounds(), color.Palette{})
	for i := 0; i < 256; i++ {
		paletted.Palette = append(paletted.Palette, color.Gray{uint8(i)})
	}
	draw.Draw(paletted, gray.Bounds(), gray, image.Point{}, draw.Src)
	texts := map[string]string{}
	for name, img := range map[string]image.Image{"nrgba": straight, "rgba": premultiplied, "gray": gray,
		"paletted": paletted} {
		im, err := ImageFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		texts[name], err = c.Generate(Request{Prompt: "What is it?", MaxTokens: 8, Images: []*Image{im},
			NoPromptCache: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Premultiplied RGBA rounds when un-premultiplied, so only equal alpha-free images are
	// compared exactly: straight alpha is dropped, so NRGBA, grey and palette agree.
	if texts["nrgba"] != texts["gray"] || texts["gray"] != texts["paletted"] {
		t.Fatalf("conversions disagree: %q", texts)
	}
}

func TestGenerateContextCancels(t *testing.T) {
	m, c := load(t)
	defer m.Close()
	defer c.Close()
	req := Request{Prompt: "Tell me a long story.", MaxTokens: 100000}

	ctx, cancel := context.WithCancel(context.Background())
	pieces := 0
	req.OnPiece = func(string) bool {
		pieces++
		if pieces == 3 {
			cancel()
		}
		return true
	}
	_, err := c.GenerateContext(ctx, req)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) || pieces != 3 {
		t.Fatalf("cancel after 3 pieces: %v after %d pieces", err, pieces)
	}

	deadline, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	start := time.Now()
	req.OnPiece = nil
	_, err = c.GenerateContext(deadline, req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("timeout: %v after %v", err, time.Since(start))
	}

	if _, err := c.GenerateContext(ctx, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("a done context must not start: %v", err)
	}
	// The context still works, and an unrelated cancellation is not reported as ctx's.
	text, err := c.GenerateContext(context.Background(), Request{Prompt: "Tell me a story.", MaxTokens: 4})
	if err != nil || text == "" {
		t.Fatalf("after cancellations: %q, %v", text, err)
	}
	_, err = c.GenerateContext(context.Background(), Request{Prompt: "Hi", Abort: func() bool { return true }})
	if !errors.Is(err, ErrCancelled) || errors.Is(err, context.Canceled) {
		t.Fatalf("Abort: %v", err)
	}
}

func TestImagePixelLimit(t *testing.T) {
	path := filepath.Join(images, "square.png")
	if prev := SetMaxImagePixels(100); prev != 178956970 {
		t.Fatalf("default limit %d", prev)
	}
	_, err := ImageFromFile(path)
	if prev := SetMaxImagePixels(0); prev != 100 {
		t.Fatalf("previous limit %d", prev)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != StatusBadImage || !strings.Contains(e.Message, "exceeds the limit") {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := ImageFromFile(path); err != nil {
		t.Fatal(err)
	}
}
