// Command describe describes an image, streaming the answer, then prints the call's statistics.
// Every language's example does the same; see examples/README.md. Ctrl-C stops the generation
// through its context.Context.
//
//	PKG_CONFIG_PATH=PREFIX/lib/pkgconfig go run . <model_dir> <image> ["prompt"]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	smolvlm "github.com/smolvlm-rs/smolvlm-go"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintf(os.Stderr, "usage: %s <model_dir> <image> [prompt]\n", os.Args[0])
		os.Exit(2)
	}
	prompt := "Describe this image."
	if len(os.Args) > 3 {
		prompt = os.Args[3]
	}
	if err := run(os.Args[1], os.Args[2], prompt); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir, imagePath, prompt string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	model, err := smolvlm.LoadModel(dir, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	c, err := model.NewContext()
	if err != nil {
		return err
	}
	defer c.Close()
	img, err := smolvlm.ImageFromFile(imagePath)
	if err != nil {
		return err
	}
	defer img.Close()
	_, err = c.GenerateContext(ctx, smolvlm.Request{Prompt: prompt, Images: []*smolvlm.Image{img}, MaxTokens: 256,
		OnPiece: func(p string) bool { fmt.Print(p); return true }})
	if err != nil {
		return err
	}
	fmt.Println()
	s, err := c.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d tokens, %.1f tok/s; vision %.0f ms, prompt %d tokens %.0f ms, total %.0f ms\n",
		s.DecodeTokens, s.DecodeTokensPerS, s.EncodeMs, s.PrefillTokens, s.PrefillMs, s.TotalMs)
	return nil
}
