// Package storage keeps what a stanza replica must not lose: the raft log
// and hard state in a segmented write-ahead log (WAL), snapshots in
// snapshot files, and the messages of channels in a MsgStore. Everything
// goes through FS, a small file system interface
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
// With WALOptions.Preallocate (a node's log when it fsyncs) the active
// segment's space is reserved by fallocate(2) 4 MiB (or SegmentBytesMax, if
// smaller) ahead of its writes, reading as zeros after the last record: a
// batch's sync then records no new file size, except once per step. On
// open the zeros are the end of the log (a torn write into them is cut off
// and a step reserved again); a segment being cut is first truncated to
// its records.
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
//
// # Message store files
//
// OpenFileMsgStore keeps one directory per channel in its directory, next
// to a LOCK file. A channel directory is named "c-" and the channel name
// with every byte but a-z, 0-9, '.', '-' and '_' written as '%' and two
// lower-case hex digits ("orders.EU" is "c-orders.%45%55"), so any name is
// a safe file name, and names differing only in case stay apart on
// case-insensitive file systems; the encoded name has at most 255 bytes.
// '*' and '>' are never part of a channel name.
//
//	msgs/
//	  LOCK
//	  c-orders.%45%55/
//	    meta                    only after a TrimBefore (or while deleting)
//	    0000000000000001.seg    segment: messages 1 to 4711
//	    0000000000000001.idx    its index
//	    0000000000001268.seg    active (last) segment, from seq 4712
//	    0000000000001268.idx
//
// Segment and index files are named after the first seq they hold, as 16
// hex digits. A segment is a sequence of records framed as above (the
// header and its two checksums), one per message, in seq order without
// gaps; type 1, payload:
//
//	 0       8                16
//	+-------+----------------+-------------------+
//	| seq   | timestampNanos | data ...          |
//	| u64   | i64            | the opaque record |
//	+-------+----------------+-------------------+
//
// The index holds one 24-byte entry per message of the segment, entry i
// for seq first+i:
//
//	 0            8                16            20      24
//	+------------+----------------+-------------+-------+
//	| offset     | timestampNanos | recordBytes | CRC   |
//	| u64        | i64            | u32         | u32   |
//	+------------+----------------+-------------+-------+
//
// offset and recordBytes locate the framed record in the segment, CRC is the
// CRC32C of bytes 0 to 19. Timestamps are stored non-decreasing per channel
// (a timestamp below the previous one is stored as that one), so
// SeqAtOrAfter binary searches: over the segments by their last timestamp
// in memory, then over the index entries of one segment with ReadAt. A Get
// reads one index entry and one record with ReadAt, and checks the record
// and that it holds the seq asked for. In memory the store keeps, per
// segment, its first and last seq and timestamp and its size, never
// messages; the last segment of each channel, and the OpenSegmentsMax most
// recently read others, stay open.
//
// Put appends the record and its index entry to buffers of the active
// segment; they are written (segment first, then index) when they reach
// 256 KiB, when the segment is read, cut or synced, and at Close, so a Put
// costs no system call. Unwritten bytes are lost in a crash like unsynced
// ones. Sync writes them, then syncs the segment file, then the index file,
// of every channel written since the last Sync. A segment is cut when a Put finds the active
// one at or over SegmentBytesMax: the old segment and index are synced
// first, then the new files are created and the directory synced (and, for
// a channel's first segment, the store directory), so every segment but the
// last is complete and durable, index included.
//
// The meta file is a single record, written with WriteFileSync: type 2
// (first seq u64, last timestamp i64) after TrimBefore, type 3 (same
// payload) when a deletion has begun. TrimBefore writes the new logical
// first there, then removes every segment whose messages are all below it
// and syncs the directory; seqs below first in the segment left are hidden.
// DeleteChannel writes the type 3 record, removes every other file, syncs,
// then removes meta and the directory and syncs the store directory.
//
// On open, every channel directory is recovered:
//
//   - A type 3 meta finishes the deletion. A type 2 meta gives the logical
//     first, and segments wholly below it are removed (a trim that stopped
//     midway).
//   - Every segment but the last is only looked at through its index: its
//     size must be a non-zero multiple of 24, its first and last entries
//     must check, and each segment must start right after the one before;
//     otherwise ErrCorrupt. Their records are not read.
//   - The last segment: the last index entry whose CRC checks and whose
//     record checks with the right seq is trusted; the records after it are
//     scanned. A bad record followed by a valid one is ErrCorrupt; a bad
//     record with nothing valid after it is a torn tail, truncated. Index
//     entries for the records found are (re)written and the index cut to
//     match: the index may be behind the segment (it is written after it)
//     or, since a crash keeps any prefix of each file's unsynced writes,
//     ahead of it. A last segment left without records is removed and the
//     one before it recovered instead; a channel left without segments and
//     without meta is removed (its first Put was never synced).
//
// So a flipped bit is reported as ErrCorrupt (errors.Is) at open when it is
// in what open reads: the meta file, the first or last index entry of a
// sealed segment, or the scanned tail of the last segment. A flipped bit in
// any other record or index entry, such as a record in the middle of a
// segment, is reported by the Get of that seq (and by a Put of that seq,
// which compares), never skipped. As in the WAL, damage to the very last
// record of the last segment cannot be told from a torn write: it is
// truncated.
//
// # How a replica uses them
//
// A stanza node keeps <dir>/wal, <dir>/snap and <dir>/msgs. The state
// machine names each channel's messages by a log ID ("c-17" holds the
// channel created 17th; a channel deleted and created again gets a new
// one) and records the channel's bounds in its snapshots, not the messages.
// Records are the MsgProto of a message's first delivery. Messages are put
// when their raft entry is applied, without fsync: the WAL has them. Before
// a snapshot the node syncs the message store; after it, it drops the
// sealed segments wholly below the first seq the snapshot records for each
// channel (DropSegmentsBefore: no write unless a segment goes) and deletes
// the channels it does not know. A restart restores the newest snapshot and applies the WAL
// after it, putting messages again (a no-op when they are there), so the
// store never needs more than what the last sync made durable.
package storage
