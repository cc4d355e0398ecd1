module github.com/aigw/aigw/hcloudfake

go 1.26.0
