// TensorBoard event files, written by hand: TFRecord framing (uint64 length, masked CRC-32C of
// the length, the bytes, masked CRC-32C of the bytes) around three tiny protobuf messages of
// TensorBoard's event.proto / summary.proto (Event, Summary.Value with a simple_value, SessionLog),
// encoded here field by field. Scalars only: no histograms, images or graphs. Not a reader.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace finegpt {

// CRC-32C (Castagnoli, reflected, initial and final xor ~0), as TFRecord uses it; `crc` continues
// an earlier call's result.
uint32_t crc32c(const void *data, size_t bytes, uint32_t crc = 0);
// TFRecord's masked form of a CRC: rotated right by 15 bits plus 0xa282ead8.
uint32_t mask_crc32c(uint32_t crc);

class EventWriter {
public:
  // Creates a new event file in `dir`, events.out.tfevents.<seconds>.<hostname>.<pid>, whose
  // seconds field is past every event file already there (TensorBoard reads a folder's files in
  // name order, so a resumed run's file must sort after the run's earlier ones), and writes its
  // first record (file_version "brain.Event:2"). Error naming the file if it cannot.
  explicit EventWriter(const std::string &dir);
  ~EventWriter();
  EventWriter(const EventWriter &) = delete;
  EventWriter &operator=(const EventWriter &) = delete;

  const std::string &path() const { return path_; }
  // The run (re)starts at `step` (SessionLog START): TensorBoard drops the events it read before
  // (earlier files) at steps >= step, so a resumed run's steps replace the ones it repeats.
  void restart(long step);
  // One event at `step` with one simple_value per (tag, value), stored as float32.
  void scalars(long step, const std::vector<std::pair<std::string, double>> &values);

private:
  // One Event record (fields after wall_time and step already encoded), flushed to the OS so that
  // a killed run keeps what it wrote.
  void write_event(long step, const std::string &payload);

  std::string path_;
  std::unique_ptr<FILE, int (*)(FILE *)> file_{nullptr, std::fclose};
};

} // namespace finegpt
