// Package storage keeps what a stanza replica must not lose: the raft log
// and hard state in a segmented write-ahead log (WAL), and snapshots in
// snapshot files. Everything goes through FS, a small file system interface
// with an OS implementation (OSFS) and a strict in-memory one (MemFS) whose
// Crash drops every write no Sync made durable: the crash model of the
// simulator.
//
// # Durability rules
//
// File contents are durable after File.Sync; a name (create, rename,
// remove, mkdir) is durable after SyncDir of its directory. Every checksum is
// CRC32C (Castagnoli). A torn tail (the unfinished last write of the last
// WAL segment) is cut off on open; any other damage is reported with an
// error wrapping ErrCorrupt, with the file name and offset, and never
// skipped.
//
// # Record framing
//
// A WAL segment is a sequence of records. Each record is a 16-byte header
// and a payload, all integers little-endian:
//
//	 0        4      5          8          12         16
//	+--------+------+----------+----------+----------+----------------+
//	| length | type | reserved | dataCRC  | headerCRC| payload ...    |
//	| uint32 | u8   | 3 x 0    | uint32   | uint32   | length bytes   |
//	+--------+------+----------+----------+----------+----------------+
//
// dataCRC covers the payload, headerCRC bytes 0 to 11. The type is never 0,
// so a zero-filled (preallocated) region never reads as a record. The header
// checksum lets the reader tell a torn tail from corruption: when a record
// fails to decode, the reader looks for any valid record after it. If there
// is one, the damage is in the middle of the log (ErrCorrupt); if there is
// none and this is the last segment, the bytes from the bad record on are a
// torn write and are truncated. A bad record in any segment but the last is
// corruption.
//
// Record types:
//
//	1 segment header   seq, lastIndex, lastTerm: 3 x uint64
//	2 batch            one Save: uvarint count, count x (uvarint length,
//	                   raftpb.Entry), uvarint length, raftpb.HardState
//	                   (length 0: none). All or nothing.
//	3 hard state       raftpb.HardState (in segment headers)
//	4 snapshot meta    raftpb.SnapshotMetadata; the log is kept
//	                   (CreateSnapshot, and in segment headers)
//	5 snapshot applied raftpb.SnapshotMetadata; the log restarts after it
//	                   (ApplySnapshot)
//	6 compaction       index, term: 2 x uint64
//
// Protobuf messages are marshaled deterministically.
//
// # Segments
//
// Segments live in one directory with a LOCK file, and are named after
// their sequence number and the index of the first entry they may hold,
// both as 16 hex digits:
//
//	0000000000000000-0000000000000001.wal
//	0000000000000001-00000000000003e9.wal
//	0000000000000002-00000000000007d1.wal   <- active (last)
//
// Sequence numbers must be contiguous. Each segment starts with a segment
// header record, then a hard state record (if there is one) and a snapshot
// meta record, the state at the moment it was cut:
//
//	+----------------+------------+---------------+-------+-------+-----
//	| segment header | hard state | snapshot meta | batch | batch | ...
//	+----------------+------------+---------------+-------+-------+-----
//
// A segment is cut when a write finds the active one at or over
// WALOptions.SegmentBytesMax; one batch is never split. Before the next
// segment is created the previous one is synced, and the new one and its
// directory entry are synced before it is used, so a crash never leaves a
// later segment with a hole before it.
//
// Compact and ApplySnapshot write their record and sync it, then remove the
// oldest segments while the following segment starts at or before the
// compacted index, and sync the directory. Replay then starts from the
// header of the first segment left, with the dummy entry at its lastIndex as
// a placeholder until the compaction or snapshot record that allowed the
// removal is replayed.
//
// # Snapshot files
//
// A snapshot file is named after the index and term of its snapshot, as 16
// hex digits each, with the suffix ".snap":
//
//	0000000000000400-0000000000000007.snap
//
//	 0            8          12         16         24
//	+------------+----------+----------+----------+----------+------+-------+
//	| "STZSNAP1" | metaLen  | reserved | dataLen  | metadata | data | CRC   |
//	|            | uint32   | uint32 0 | uint64   | metaLen  |      | uint32|
//	+------------+----------+----------+----------+----------+------+-------+
//
// metadata is a marshaled raftpb.SnapshotMetadata and data the opaque state,
// CRC the CRC32C of every byte before it. A file is written as name.tmp,
// synced, renamed and its directory synced. A file that fails to decode, or
// whose name does not match its metadata, is renamed with the suffix
// ".broken" and the previous snapshot used. The newest retainCount
// snapshots are kept.
package storage
