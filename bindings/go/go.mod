module github.com/smolvlm-rs/smolvlm-go

go 1.19
