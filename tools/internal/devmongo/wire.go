package devmongo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MongoDB wire protocol framing, only as much as the proxy needs to know where
// one message ends and whether a reply follows. Every message starts with a
// 16-byte header of little-endian int32s: messageLength (header included),
// requestID, responseTo, opCode.
const (
	headerLen = 16

	opReply      int32 = 1    // OP_REPLY: the answer to OP_QUERY
	opCompressed int32 = 2012 // OP_COMPRESSED: never used, FerretDB advertises no compressors
	opQuery      int32 = 2004 // OP_QUERY: legacy, drivers still send their first hello with it
	opMsg        int32 = 2013 // OP_MSG: everything else

	// OP_MSG flagBits, the first uint32 after the header.
	flagChecksumPresent uint32 = 1 << 0
	flagMoreToCome      uint32 = 1 << 1

	// maxMessageLen bounds a message in either direction: MongoDB's (and
	// FerretDB's) maxMessageSizeBytes is 48,000,000.
	maxMessageLen = 48_000_000
)

// message is one complete wire-protocol message, header included.
type message []byte

func (m message) requestID() int32  { return int32(binary.LittleEndian.Uint32(m[4:8])) }
func (m message) responseTo() int32 { return int32(binary.LittleEndian.Uint32(m[8:12])) }
func (m message) opCode() int32     { return int32(binary.LittleEndian.Uint32(m[12:16])) }

// flags returns an OP_MSG's flagBits (0 for any other opcode).
func (m message) flags() uint32 {
	if m.opCode() != opMsg || len(m) < headerLen+4 {
		return 0
	}
	return binary.LittleEndian.Uint32(m[headerLen : headerLen+4])
}

// moreToCome reports whether an OP_MSG has the moreToCome flag: on a request,
// the client expects no reply; on a reply, more replies follow.
func (m message) moreToCome() bool { return m.flags()&flagMoreToCome != 0 }

// errFraming is wrapped by every error about a malformed message.
var errFraming = errors.New("malformed wire message")

// readMessage reads exactly one message from r. It returns io.EOF only when r
// ends cleanly between two messages.
func readMessage(r io.Reader) (message, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int32(binary.LittleEndian.Uint32(hdr[0:4]))
	if n < headerLen || n > maxMessageLen {
		return nil, fmt.Errorf("%w: messageLength %d outside [%d, %d]", errFraming, n, headerLen, maxMessageLen)
	}
	m := make(message, n)
	copy(m, hdr[:])
	if _, err := io.ReadFull(r, m[headerLen:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if m.opCode() == opMsg && n < headerLen+4 {
		return nil, fmt.Errorf("%w: OP_MSG of %d bytes has no flagBits", errFraming, n)
	}
	return m, nil
}

// newOpMsg builds an OP_MSG with one body section (kind 0) holding doc.
func newOpMsg(requestID int32, flags uint32, doc any) (message, error) {
	body, err := bson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	n := headerLen + 4 + 1 + len(body)
	m := make(message, 0, n)
	m = binary.LittleEndian.AppendUint32(m, uint32(n))
	m = binary.LittleEndian.AppendUint32(m, uint32(requestID))
	m = binary.LittleEndian.AppendUint32(m, 0)
	m = binary.LittleEndian.AppendUint32(m, uint32(opMsg))
	m = binary.LittleEndian.AppendUint32(m, flags)
	m = append(m, 0) // section kind 0: body
	m = append(m, body...)
	return m, nil
}

// opMsgBody returns the body document (section kind 0) of an OP_MSG.
func opMsgBody(m message) (bson.Raw, error) {
	if m.opCode() != opMsg {
		return nil, fmt.Errorf("%w: opcode %d is not OP_MSG", errFraming, m.opCode())
	}
	end := len(m)
	if m.flags()&flagChecksumPresent != 0 {
		end -= 4
	}
	for i := headerLen + 4; i < end; {
		kind := m[i]
		i++
		if i+4 > end {
			break
		}
		size := int(binary.LittleEndian.Uint32(m[i : i+4]))
		if size < 5 || i+size > end {
			break
		}
		if kind == 0 {
			doc := bson.Raw(m[i : i+size])
			if err := doc.Validate(); err != nil {
				return nil, fmt.Errorf("%w: %w", errFraming, err)
			}
			return doc, nil
		}
		i += size // kind 1: a document sequence, prefixed by its int32 size
	}
	return nil, fmt.Errorf("%w: OP_MSG without a body section", errFraming)
}

// commandName returns the command of an OP_MSG (the first key of its body) or
// of an OP_QUERY (the first key of its query document), or "" if there is none.
func commandName(m message) string {
	var doc bson.Raw
	switch m.opCode() {
	case opMsg:
		body, err := opMsgBody(m)
		if err != nil {
			return ""
		}
		doc = body
	case opQuery:
		// flags int32, fullCollectionName cstring, numberToSkip int32,
		// numberToReturn int32, query document.
		i := headerLen + 4
		end := bytes.IndexByte(m[min(i, len(m)):], 0)
		if end < 0 {
			return ""
		}
		i += end + 1 + 8
		if i+4 > len(m) {
			return ""
		}
		size := int(binary.LittleEndian.Uint32(m[i : i+4]))
		if size < 5 || i+size > len(m) {
			return ""
		}
		doc = bson.Raw(m[i : i+size])
	default:
		return ""
	}
	elem, err := doc.IndexErr(0)
	if err != nil {
		return ""
	}
	return elem.Key()
}
