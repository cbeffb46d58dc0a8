// Package smolvlm is the Go binding of the smolvlm C library (CPU inference for SmolVLM).
//
//	model, err := smolvlm.LoadModel("SmolVLM-256M-Instruct", nil)
//	defer model.Close()
//	ctx, err := model.NewContext()
//	defer ctx.Close()
//	img, err := smolvlm.ImageFromFile("photo.jpg")
//	text, err := ctx.Generate(smolvlm.Request{Prompt: "Describe this image.", Images: []*smolvlm.Image{img}})
//
// The library is found through pkg-config (`scripts/install.sh PREFIX` writes smolvlm.pc). A Model is
// safe for concurrent use; a Context is used by one goroutine at a time (ErrBusy otherwise).
package smolvlm

/*
#cgo pkg-config: smolvlm
#include <stdlib.h>
#include "smolvlm.h"

bool smolvlmGoPiece(char *piece, size_t len, int32_t token, void *user_data);
bool smolvlmGoAbort(void *user_data);
bool smolvlmGoProgress(float fraction, void *user_data);
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// Status is the C library's status code.
type Status int

// The statuses of the C library (smolvlm_status), in its order.
const (
	StatusOK Status = iota
	StatusNullArg
	StatusInvalidArg
	StatusIO
	StatusBadModel
	StatusBadImage
	StatusCancelled
	StatusBusy
	StatusOOM
	StatusPanic
)

// Error is a failed call: the status and the library's message. A generation stopped because
// its context.Context was done (GenerateContext) has Status StatusCancelled and wraps ctx.Err().
type Error struct {
	// Status is the C library's status code.
	Status Status
	// Message is what smolvlm_last_error() said.
	Message string
	// Err is the cause from Go's side, if any (context.Canceled, context.DeadlineExceeded).
	Err error
}

// Unwrap returns the Go-side cause (see Err).
func (e *Error) Unwrap() error { return e.Err }

// Error formats the status and the message.
func (e *Error) Error() string {
	return fmt.Sprintf("smolvlm: %s: %s", C.GoString(C.smolvlm_status_str(C.int32_t(e.Status))), e.Message)
}

// ErrCancelled and ErrBusy match errors.Is for the statuses of the same name.
var (
	ErrCancelled = &Error{Status: StatusCancelled}
	ErrBusy      = &Error{Status: StatusBusy}
)

// Is makes errors.Is(err, ErrCancelled) and errors.Is(err, ErrBusy) match by status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// check must run on the thread that made the call (the last error is per thread).
// (cgo gives C enum return values the type uint32.)
func check(s uint32) error {
	if s == 0 {
		return nil
	}
	return &Error{Status: Status(s), Message: C.GoString(C.smolvlm_last_error())}
}

// Version is the loaded library's version.
func Version() string { return C.GoString(C.smolvlm_version()) }

// SystemInfo says which kernels the library runs on this machine.
func SystemInfo() string { return C.GoString(C.smolvlm_system_info()) }

// handleArg stores a cgo.Handle in C memory so it can travel as a void* user_data.
func handleArg(v interface{}) (unsafe.Pointer, func()) {
	h := cgo.NewHandle(v)
	p := C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
	*(*C.uintptr_t)(p) = C.uintptr_t(h)
	return p, func() { C.free(p); h.Delete() }
}

func fromArg(p unsafe.Pointer) interface{} {
	return cgo.Handle(*(*C.uintptr_t)(p)).Value()
}

// Model is a loaded model directory.
type Model struct{ p *C.smolvlm_model_t }

// LoadModel loads a model directory. progress (may be nil) gets the fraction done; returning false
// cancels with ErrCancelled.
func LoadModel(dir string, progress func(float32) bool) (*Model, error) {
	return LoadModelQuantized(dir, progress, QuantizeNone)
}

// Quantize is a block format the decoder's linear weights can be quantized to at load.
type Quantize int32

// The formats of LoadModelQuantized (ggml's; the output projection is Q8_0). Rows that do not
// fill a K-quant's 256-element blocks take llama.cpp's fallback (Q5_0, Q5_1, Q8_0).
const (
	QuantizeNone Quantize = C.SMOLVLM_QUANTIZE_NONE
	QuantizeQ8_0 Quantize = C.SMOLVLM_QUANTIZE_Q8_0
	QuantizeQ4_0 Quantize = C.SMOLVLM_QUANTIZE_Q4_0
	QuantizeQ4_1 Quantize = C.SMOLVLM_QUANTIZE_Q4_1
	QuantizeQ5_0 Quantize = C.SMOLVLM_QUANTIZE_Q5_0
	QuantizeQ5_1 Quantize = C.SMOLVLM_QUANTIZE_Q5_1
	QuantizeQ4_K Quantize = C.SMOLVLM_QUANTIZE_Q4_K
	QuantizeQ5_K Quantize = C.SMOLVLM_QUANTIZE_Q5_K
	QuantizeQ6_K Quantize = C.SMOLVLM_QUANTIZE_Q6_K
)

// LoadModelQuantized loads a model directory with its decoder's linear weights quantized at load
// to q (their products run in f32 on the dequantized values); otherwise as LoadModel.
func LoadModelQuantized(dir string, progress func(float32) bool, q Quantize) (*Model, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var params C.smolvlm_model_params
	C.smolvlm_model_params_default(&params)
	params.quantize = C.int32_t(q)
	if progress != nil {
		arg, release := handleArg(progress)
		defer release()
		params.progress = C.smolvlm_progress_cb(C.smolvlmGoProgress)
		params.user_data = arg
	}
	var m *C.smolvlm_model_t
	if err := check(C.smolvlm_model_load(cdir, &params, &m)); err != nil {
		return nil, err
	}
	model := &Model{p: m}
	runtime.SetFinalizer(model, (*Model).Close)
	return model, nil
}

// Close releases the model (contexts keep their own reference). Safe to call twice.
func (m *Model) Close() error {
	if m.p != nil {
		C.smolvlm_model_free(m.p)
		m.p = nil
	}
	return nil
}

// Context holds a generation's state; use it from one goroutine at a time.
type Context struct{ p *C.smolvlm_ctx_t }

// NewContext creates a context on the model.
func (m *Model) NewContext() (*Context, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var c *C.smolvlm_ctx_t
	if err := check(C.smolvlm_ctx_new(m.p, &c)); err != nil {
		return nil, err
	}
	ctx := &Context{p: c}
	runtime.SetFinalizer(ctx, (*Context).Close)
	return ctx, nil
}

// Close releases the context. Safe to call twice.
func (c *Context) Close() error {
	if c.p != nil {
		C.smolvlm_free(c.p)
		c.p = nil
	}
	return nil
}

// Request describes one generation. Messages (HF chat format), when set, replace Prompt and
// SystemPrompt; its image entries take Images in order.
type Request struct {
	// Prompt is the user message (the images come before it).
	Prompt string
	// SystemPrompt is an optional system message.
	SystemPrompt string
	// Messages is a whole conversation in the HF chat format, instead of Prompt and SystemPrompt.
	Messages []map[string]interface{}
	// Images are the request's images, in order.
	Images []*Image
	// MaxTokens bounds the generated tokens (0 = 256).
	MaxTokens int
	// Temperature of sampling (0 = greedy).
	Temperature float32
	// TopK keeps the k most likely tokens (0 = off).
	TopK int
	// TopP is the nucleus sampling mass (0 = 1, off).
	TopP float32
	// Seed of the sampler.
	Seed uint64
	// Threads of the context's pool (0 = all CPUs).
	Threads int
	// Precision is "auto" (or ""), "f32" or "bf16" (see smolvlm_precision in the C header).
	Precision string
	// NoPromptCache computes the whole prompt and forgets what the context kept; by default a
	// context reuses what it computed for earlier prompts (a follow-up question costs only its
	// new tokens; the answer is that of a fresh run).
	NoPromptCache bool
	// OnPiece receives complete UTF-8 pieces; returning false stops generation.
	OnPiece func(piece string) bool
	// Abort is polled between tiles, layers and tokens; true cancels with ErrCancelled.
	Abort func() bool
}

type callbacks struct {
	onPiece func(string) bool
	abort   func() bool
}

// Generate runs a request and returns the text.
func (c *Context) Generate(r Request) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p C.smolvlm_generate_params
	C.smolvlm_generate_params_default(&p)
	if r.MaxTokens != 0 {
		p.max_tokens = C.int32_t(r.MaxTokens)
	}
	p.temperature = C.float(r.Temperature)
	p.top_k = C.int32_t(r.TopK)
	if r.TopP != 0 {
		p.top_p = C.float(r.TopP)
	}
	p.seed = C.uint64_t(r.Seed)
	p.n_threads = C.int32_t(r.Threads)
	if r.NoPromptCache {
		p.prompt_cache = 0
	}
	switch r.Precision {
	case "", "auto":
		p.precision = C.SMOLVLM_PRECISION_AUTO
	case "f32":
		p.precision = C.SMOLVLM_PRECISION_F32
	case "bf16":
		p.precision = C.SMOLVLM_PRECISION_BF16
	case "int8":
		p.precision = C.SMOLVLM_PRECISION_INT8
	default:
		return "", fmt.Errorf("smolvlm: unknown precision %q (auto, f32, bf16 or int8)", r.Precision)
	}
	if r.OnPiece != nil || r.Abort != nil {
		arg, release := handleArg(&callbacks{onPiece: r.OnPiece, abort: r.Abort})
		defer release()
		p.user_data = arg
		if r.OnPiece != nil {
			p.on_piece = C.smolvlm_piece_cb(C.smolvlmGoPiece)
		}
		if r.Abort != nil {
			p.should_abort = C.smolvlm_abort_cb(C.smolvlmGoAbort)
		}
	}
	var imgs **C.smolvlm_image_t
	if len(r.Images) > 0 {
		arr := C.malloc(C.size_t(len(r.Images)) * C.size_t(unsafe.Sizeof(uintptr(0))))
		defer C.free(arr)
		list := unsafe.Slice((**C.smolvlm_image_t)(arr), len(r.Images))
		for i, img := range r.Images {
			list[i] = img.p
		}
		imgs = (**C.smolvlm_image_t)(arr)
	}
	var out *C.char
	var status uint32
	if r.Messages != nil {
		js, err := json.Marshal(r.Messages)
		if err != nil {
			return "", err
		}
		cjs := C.CString(string(js))
		defer C.free(unsafe.Pointer(cjs))
		status = C.smolvlm_ctx_generate_chat(c.p, cjs, imgs, C.size_t(len(r.Images)), &p, &out)
	} else {
		cprompt := C.CString(r.Prompt)
		defer C.free(unsafe.Pointer(cprompt))
		var csys *C.char
		if r.SystemPrompt != "" {
			csys = C.CString(r.SystemPrompt)
			defer C.free(unsafe.Pointer(csys))
		}
		status = C.smolvlm_ctx_generate(c.p, cprompt, csys, imgs, C.size_t(len(r.Images)), &p, &out)
	}
	runtime.KeepAlive(r.Images)
	if err := check(status); err != nil {
		return "", err
	}
	defer C.smolvlm_string_free(out)
	return C.GoString(out), nil
}

// GenerateContext is Generate stopped when ctx is done: the library polls between tiles, layers
// and tokens, so the call returns promptly with an *Error of StatusCancelled that wraps ctx.Err()
// (errors.Is(err, context.Canceled) or context.DeadlineExceeded, and errors.Is(err, ErrCancelled)).
// r.Abort, if set, is still polled too.
func (c *Context) GenerateContext(ctx context.Context, r Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", &Error{Status: StatusCancelled, Message: "the context was done before the call", Err: err}
	}
	userAbort := r.Abort
	r.Abort = func() bool {
		return ctx.Err() != nil || (userAbort != nil && userAbort())
	}
	text, err := c.Generate(r)
	var e *Error
	if err != nil && ctx.Err() != nil && errors.As(err, &e) && e.Status == StatusCancelled {
		e.Err = ctx.Err()
	}
	return text, err
}

// Stats are the timings and counts of a context's last generation.
type Stats struct {
	LoadMs, EncodeMs, PrefillMs, DecodeMs, DecodeTokensPerS, TotalMs float64
	// Tiles encoded and prompt positions computed by the call; ReusedTokens were taken from
	// the context's prompt cache instead.
	Tiles, PrefillTokens, DecodeTokens int
	// Threads the call ran on (the context's own pool).
	Threads int
	// Precision the call ran in: "f32" or "bf16".
	Precision string
	// ReusedTokens were taken from the context's prompt cache instead of computed.
	ReusedTokens int
}

// Stats returns the statistics of the last successful Generate.
func (c *Context) Stats() (Stats, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s C.smolvlm_stats
	s.size = C.size_t(unsafe.Sizeof(s))
	if err := check(C.smolvlm_ctx_get_stats(c.p, &s)); err != nil {
		return Stats{}, err
	}
	return Stats{float64(s.load_ms), float64(s.encode_ms), float64(s.prefill_ms), float64(s.decode_ms),
		float64(s.decode_tokens_per_s), float64(s.total_ms), int(s.tiles), int(s.prefill_tokens),
		int(s.decode_tokens), int(s.threads), precisionName(int(s.precision)), int(s.reused_tokens)}, nil
}

// ResetPromptCache forgets what the context kept from earlier prompts: the next Generate
// computes its whole prompt.
func (c *Context) ResetPromptCache() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(C.smolvlm_ctx_reset(c.p))
}

// SaveState returns the context's reusable state (its prompt and KV caches) as bytes, for
// LoadState on a context of the same model.
func (c *Context) SaveState() ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var size C.size_t
	if err := check(C.smolvlm_ctx_state_save(c.p, nil, 0, &size)); err != nil {
		return nil, err
	}
	buf := make([]byte, int(size))
	if len(buf) == 0 {
		return buf, nil
	}
	if err := check(C.smolvlm_ctx_state_save(c.p, (*C.uint8_t)(unsafe.Pointer(&buf[0])), size, &size)); err != nil {
		return nil, err
	}
	return buf[:int(size)], nil
}

// LoadState restores SaveState bytes: the next Generate continues as the saving context would.
// A state from another model, version or a damaged one is refused and changes nothing.
func (c *Context) LoadState(data []byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if len(data) == 0 {
		return check(C.smolvlm_ctx_state_load(c.p, nil, 0))
	}
	return check(C.smolvlm_ctx_state_load(c.p, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data))))
}

// Chat is a conversation on one context: the first message's images, then each question
// and reply in turn (replies kept as trimmed text, as a caller sends them back).
type Chat struct {
	ctx      *Context
	images   []*Image
	messages []map[string]interface{}
}

// NewChat starts a conversation about images (may be empty), with an optional system prompt.
func (c *Context) NewChat(system string, images []*Image) *Chat {
	ch := &Chat{ctx: c, images: images}
	if system != "" {
		ch.messages = append(ch.messages, map[string]interface{}{"role": "system", "content": system})
	}
	return ch
}

// Ask sends the next user message with r's settings (its Prompt, SystemPrompt, Messages and
// Images are the chat's) and returns the reply, which joins the conversation.
func (ch *Chat) Ask(text string, r Request) (string, error) {
	parts := []interface{}{}
	if len(ch.messages) == 0 || (len(ch.messages) == 1 && ch.messages[0]["role"] == "system") {
		for range ch.images {
			parts = append(parts, map[string]interface{}{"type": "image"})
		}
	}
	parts = append(parts, map[string]interface{}{"type": "text", "text": text})
	msgs := append(ch.messages, map[string]interface{}{"role": "user", "content": parts})
	r.Prompt, r.SystemPrompt, r.Messages, r.Images = "", "", msgs, ch.images
	reply, err := ch.ctx.Generate(r)
	if err != nil {
		return "", err
	}
	ch.messages = append(msgs, map[string]interface{}{"role": "assistant",
		"content": []interface{}{map[string]interface{}{"type": "text", "text": strings.TrimSpace(reply)}}})
	return reply, nil
}

// Messages is the conversation so far, in the HF chat format.
func (ch *Chat) Messages() []map[string]interface{} { return ch.messages }

// precisionName names a smolvlm_precision value as Request.Precision spells it.
func precisionName(p int) string {
	switch p {
	case C.SMOLVLM_PRECISION_BF16:
		return "bf16"
	case C.SMOLVLM_PRECISION_INT8:
		return "int8"
	}
	return "f32"
}
