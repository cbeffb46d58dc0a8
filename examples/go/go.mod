module github.com/smolvlm-rs/smolvlm-go/examples/describe

go 1.19

require github.com/smolvlm-rs/smolvlm-go v0.0.0

replace github.com/smolvlm-rs/smolvlm-go => ../../bindings/go
