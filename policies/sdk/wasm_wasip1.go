//go:build wasip1

package sdk

import "unsafe"

// The exports of policy ABI v1; see policies/ABI.md.

var (
	requestBuf []byte // written by the host, reused across requests
	answerBuf  []byte // the last answer record, read by the host
	errorBuf   []byte // the last init error message
)

//go:wasmexport kvhost_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport kvhost_request_buffer
func requestBuffer(size int32) int32 {
	if size <= 0 {
		size = 1
	}
	if int(size) > cap(requestBuf) {
		requestBuf = make([]byte, size)
	}
	requestBuf = requestBuf[:size]
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(requestBuf))))
}

//go:wasmexport kvhost_init
func initExport(ptr, n int32) int64 {
	var cfg []byte
	if n > 0 {
		if int(n) > len(requestBuf) || ptr != int32(uintptr(unsafe.Pointer(unsafe.SliceData(requestBuf)))) {
			return packString("sdk: configuration must be written to the request buffer")
		}
		cfg = requestBuf[:n]
	}
	if err := initPolicy(cfg); err != nil {
		return packString(err.Error())
	}
	return 0
}

//go:wasmexport kvhost_features
func featuresExport() int32 { return features }

//go:wasmexport kvhost_evaluate
func evaluate(n int32) int64 {
	if n < 0 || int(n) > len(requestBuf) {
		n = 0 // decodes as a malformed record: denied with a reason
	}
	ans := evaluateRecord(answerBuf[:0], requestBuf[:n])
	if ans == nil {
		return 0
	}
	answerBuf = ans
	return pack(ans)
}

func packString(s string) int64 {
	errorBuf = append(errorBuf[:0], s...)
	if len(errorBuf) == 0 {
		errorBuf = append(errorBuf, '?')
	}
	return pack(errorBuf)
}

func pack(b []byte) int64 {
	return int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | int64(len(b))
}

//go:wasmimport kvhost log
func kvhostLog(level int32, ptr unsafe.Pointer, n int32)

func hostLog(level Level, msg string) {
	if len(msg) == 0 {
		return
	}
	kvhostLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}
