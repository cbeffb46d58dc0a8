package smolvlm

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import "unsafe"

//export smolvlmGoPiece
func smolvlmGoPiece(piece *C.char, n C.size_t, token C.int32_t, userData unsafe.Pointer) C.bool {
	cb := fromArg(userData).(*callbacks)
	return C.bool(cb.onPiece(C.GoStringN(piece, C.int(n))))
}

//export smolvlmGoAbort
func smolvlmGoAbort(userData unsafe.Pointer) C.bool {
	return C.bool(fromArg(userData).(*callbacks).abort())
}

//export smolvlmGoProgress
func smolvlmGoProgress(fraction C.float, userData unsafe.Pointer) C.bool {
	return C.bool(fromArg(userData).(func(float32) bool)(float32(fraction)))
}
