module github.com/aigw/aigw/worker

go 1.26.0

replace github.com/aigw/aigw => ../
