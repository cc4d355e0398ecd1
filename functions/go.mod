module github.com/aigw/aigw/functions

go 1.26.0

replace github.com/aigw/aigw => ../
