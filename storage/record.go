package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// ErrCorrupt is returned (wrapped, with the file name and offset) when stored
// data fails its checksum or does not decode, anywhere a torn write cannot
// explain it. Data is never skipped silently.
var ErrCorrupt = errors.New("storage: corrupt data")

// crc32c returns the CRC32C (Castagnoli) checksum of b, the checksum of every
// format of the package. MakeTable caches the Castagnoli table.
func crc32c(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// recordHeaderBytes is the size of a record header:
//
//	0  length     uint32 LE, payload bytes
//	4  type       uint8, never 0
//	5  reserved   3 bytes, zero
//	8  dataCRC    uint32 LE, CRC32C of the payload
//	12 headerCRC  uint32 LE, CRC32C of bytes 0 to 11
const recordHeaderBytes = 16

// recordPayloadBytesMax bounds the payload of one record.
const recordPayloadBytesMax = math.MaxUint32

// record is one decoded record; payload aliases the segment buffer.
type record struct {
	typ      byte
	offBytes int64
	payload  []byte
}

// appendRecord appends the framed record (typ, payload) to buf.
func appendRecord(buf []byte, typ byte, payload []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderBytes)...)
	buf = append(buf, payload...)
	frameRecord(buf[start:], typ)
	return buf
}

// frameRecord fills in the header of rec, whose payload already follows the
// recordHeaderBytes reserved at its start.
func frameRecord(rec []byte, typ byte) {
	if typ == 0 {
		panic("storage: record type 0 is reserved")
	}
	payload := rec[recordHeaderBytes:]
	if uint64(len(payload)) > recordPayloadBytesMax {
		panic(fmt.Sprintf("storage: record payload of %d bytes exceeds %d", len(payload), uint64(recordPayloadBytesMax)))
	}
	h := rec[:recordHeaderBytes]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	h[4] = typ
	h[5], h[6], h[7] = 0, 0, 0
	binary.LittleEndian.PutUint32(h[8:], crc32c(payload))
	binary.LittleEndian.PutUint32(h[12:], crc32c(h[:12]))
}

// recordAt decodes the record at off of data. It reports false if there is
// no complete, checksum-valid record there.
func recordAt(data []byte, off int64) (record, bool) {
	if off < 0 || int64(len(data))-off < recordHeaderBytes {
		return record{}, false
	}
	h := data[off : off+recordHeaderBytes]
	if h[4] == 0 || h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return record{}, false
	}
	if crc32c(h[:12]) != binary.LittleEndian.Uint32(h[12:]) {
		return record{}, false
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	start := off + recordHeaderBytes
	if int64(len(data))-start < n {
		return record{}, false
	}
	payload := data[start : start+n]
	if crc32c(payload) != binary.LittleEndian.Uint32(h[8:]) {
		return record{}, false
	}
	return record{typ: h[4], offBytes: off, payload: payload}, true
}

// scanRecords decodes the records of data in order until the first position
// that holds no valid record. It returns the records and that position,
// endBytes (len(data) if every byte decoded).
//
// A bad record followed by any valid record cannot be a torn write, which
// only damages the end of what was written: scanRecords then returns an error
// wrapping ErrCorrupt with name and the offset. Otherwise the caller decides
// whether bytes past endBytes are a torn tail (the last segment) or
// corruption (any other file).
func scanRecords(name string, data []byte) (recs []record, endBytes int64, err error) {
	var off int64
	for {
		r, ok := recordAt(data, off)
		if !ok {
			break
		}
		recs = append(recs, r)
		off += recordHeaderBytes + int64(len(r.payload))
	}
	// Look for any valid record after the bad one. The type byte of a valid
	// header is never zero, which skips zero-filled space cheaply.
	for q := off + 1; q+recordHeaderBytes <= int64(len(data)); q++ {
		if data[q+4] == 0 {
			continue
		}
		if _, ok := recordAt(data, q); ok {
			return nil, 0, fmt.Errorf("%w: %s: bad record at offset %d followed by a valid one at offset %d", ErrCorrupt, name, off, q)
		}
	}
	return recs, off, nil
}
