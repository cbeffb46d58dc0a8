package smolvlm

/*
#include <stdlib.h>
#include "smolvlm.h"
*/
import "C"

import (
	"image"
	"image/color"
	"runtime"
	"unsafe"
)

// Image is an 8-bit RGB image held by the library.
type Image struct{ p *C.smolvlm_image_t }

func newImage(p *C.smolvlm_image_t) *Image {
	img := &Image{p: p}
	runtime.SetFinalizer(img, (*Image).Close)
	return img
}

// ImageFromFile decodes an image file.
func ImageFromFile(path string) (*Image, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var p *C.smolvlm_image_t
	if err := check(C.smolvlm_image_from_file(cpath, &p)); err != nil {
		return nil, err
	}
	return newImage(p), nil
}

// ImageFromBytes decodes encoded image bytes (PNG, JPEG, ...).
func ImageFromBytes(data []byte) (*Image, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if len(data) == 0 {
		return nil, &Error{Status: StatusBadImage, Message: "image data is empty"}
	}
	var p *C.smolvlm_image_t
	if err := check(C.smolvlm_image_from_bytes((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &p)); err != nil {
		return nil, err
	}
	return newImage(p), nil
}

// ImageFromPixels copies raw RGB (channels 3) or RGBA (channels 4) rows of stride bytes.
func ImageFromPixels(pixels []byte, width, height, channels, stride int) (*Image, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	format := map[int]C.int32_t{3: 0, 4: 1}
	f, ok := format[channels]
	if !ok || len(pixels) == 0 {
		return nil, &Error{Status: StatusInvalidArg, Message: "channels must be 3 or 4 and pixels non-empty"}
	}
	var p *C.smolvlm_image_t
	if err := check(C.smolvlm_image_from_pixels((*C.uint8_t)(unsafe.Pointer(&pixels[0])), C.uint32_t(width),
		C.uint32_t(height), C.size_t(stride), f, &p)); err != nil {
		return nil, err
	}
	return newImage(p), nil
}

// Close releases the image. Safe to call twice.
func (i *Image) Close() error {
	if i.p != nil {
		C.smolvlm_image_free(i.p)
		i.p = nil
	}
	return nil
}

// SetMaxImagePixels sets the process-wide limit on an image file's pixel count, read from its
// header before decoding (0: the default, 178,956,970, where Pillow refuses a decompression
// bomb), and returns the previous limit. Larger files fail with StatusBadImage.
func SetMaxImagePixels(max uint64) uint64 {
	return uint64(C.smolvlm_set_max_image_pixels(C.uint64_t(max)))
}

// ImageFromImage copies any image.Image as 8-bit RGB: alpha is dropped (straight, not
// premultiplied, colour values are kept, as Pillow's RGB conversion does) and grey becomes
// R = G = B. *image.NRGBA, opaque *image.RGBA and *image.Gray are copied row by row; other types
// go through color.NRGBAModel pixel by pixel.
func ImageFromImage(img image.Image) (*Image, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, &Error{Status: StatusInvalidArg, Message: "the image has no pixels"}
	}
	rgb := make([]byte, 0, w*h*3)
	switch src := img.(type) {
	case *image.NRGBA:
		rgb = appendRGBA(rgb, src.Pix, src.Stride, src.PixOffset(b.Min.X, b.Min.Y), w, h)
	case *image.RGBA:
		if !src.Opaque() {
			rgb = appendModel(rgb, img, b)
			break
		}
		rgb = appendRGBA(rgb, src.Pix, src.Stride, src.PixOffset(b.Min.X, b.Min.Y), w, h)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := 0; x < w; x++ {
				rgb = append(rgb, row[x], row[x], row[x])
			}
		}
	default:
		rgb = appendModel(rgb, img, b)
	}
	return ImageFromPixels(rgb, w, h, 3, w*3)
}

// appendRGBA appends the RGB of h rows of w 4-byte pixels starting at pix[off].
func appendRGBA(rgb, pix []byte, stride, off, w, h int) []byte {
	for y := 0; y < h; y++ {
		row := pix[off+y*stride : off+y*stride+4*w]
		for x := 0; x < 4*w; x += 4 {
			rgb = append(rgb, row[x], row[x+1], row[x+2])
		}
	}
	return rgb
}

// appendModel appends the straight RGB of every pixel of img within b.
func appendModel(rgb []byte, img image.Image, b image.Rectangle) []byte {
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			rgb = append(rgb, c.R, c.G, c.B)
		}
	}
	return rgb
}
