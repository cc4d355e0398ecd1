package devmongo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestReadMessage(t *testing.T) {
	ping, err := newOpMsg(42, flagMoreToCome, bson.D{{Key: "ping", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("two messages then clean EOF", func(t *testing.T) {
		r := bytes.NewReader(append(append(message{}, ping...), ping...))
		for range 2 {
			m, err := readMessage(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m, ping) || m.requestID() != 42 || m.opCode() != opMsg || !m.moreToCome() {
				t.Fatalf("got %x", m)
			}
		}
		if _, err := readMessage(r); err != io.EOF {
			t.Fatalf("at the end: %v, want io.EOF", err)
		}
	})

	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"truncated header": {ping[:7], io.ErrUnexpectedEOF},
		"truncated body":   {ping[:len(ping)-1], io.ErrUnexpectedEOF},
		"header only body": {ping[:headerLen], io.ErrUnexpectedEOF},
		"length too small": {binary.LittleEndian.AppendUint32(nil, 15), io.ErrUnexpectedEOF},
		"length below 16":  {append(binary.LittleEndian.AppendUint32(nil, 15), ping[4:]...), errFraming},
		"length too large": {append(binary.LittleEndian.AppendUint32(nil, maxMessageLen+1), ping[4:]...), errFraming},
		"negative length":  {append(binary.LittleEndian.AppendUint32(nil, 0xffffffff), ping[4:]...), errFraming},
		"op_msg no flags":  {append(binary.LittleEndian.AppendUint32(nil, headerLen), ping[4:headerLen]...), errFraming},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := readMessage(bytes.NewReader(tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOpMsgBody(t *testing.T) {
	body, err := bson.Marshal(bson.D{{Key: "insert", Value: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	item, err := bson.Marshal(bson.D{{Key: "_id", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// A kind-1 document sequence before the body, and a checksum after it.
	m := make(message, headerLen)
	m = binary.LittleEndian.AppendUint32(m, flagChecksumPresent)
	m = append(m, 1)
	seq := append(append(binary.LittleEndian.AppendUint32(nil, 0), "documents\x00"...), item...)
	binary.LittleEndian.PutUint32(seq, uint32(len(seq)))
	m = append(m, seq...)
	m = append(m, 0)
	m = append(m, body...)
	m = binary.LittleEndian.AppendUint32(m, 0xdeadbeef)
	binary.LittleEndian.PutUint32(m[0:], uint32(len(m)))
	binary.LittleEndian.PutUint32(m[12:], uint32(opMsg))

	got, err := opMsgBody(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body %s, want %s", got, bson.Raw(body))
	}
	if m.moreToCome() {
		t.Fatal("moreToCome set")
	}
}

func TestCommandName(t *testing.T) {
	msg, err := newOpMsg(1, 0, bson.D{{Key: "findAndModify", Value: "jobs"}, {Key: "$db", Value: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	query, err := bson.Marshal(bson.D{{Key: "isMaster", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	q := make(message, headerLen, 64)
	q = binary.LittleEndian.AppendUint32(q, 0)
	q = append(q, "admin.$cmd\x00"...)
	q = binary.LittleEndian.AppendUint64(q, 0) // numberToSkip, numberToReturn
	q = append(q, query...)
	binary.LittleEndian.PutUint32(q[12:], uint32(opQuery))

	for name, tc := range map[string]struct {
		m    message
		want string
	}{
		"op_msg":             {msg, "findAndModify"},
		"op_query":           {q, "isMaster"},
		"op_query truncated": {q[:len(q)-3], ""},
		"op_query no cstr":   {q[:headerLen+6], ""},
		"op_msg no body":     {msg[:headerLen+4], ""},
		"other opcode":       {binary.LittleEndian.AppendUint32(append(message{}, q[:12]...), 2006), ""},
	} {
		t.Run(name, func(t *testing.T) {
			if got := commandName(tc.m); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
