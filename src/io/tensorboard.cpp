// TensorBoard event files (see tensorboard.h). The protobuf wire format by hand: a field is a key
// varint (field number << 3 | wire type) and a value: varint (0), 64-bit little-endian (1),
// length-delimited (2) or 32-bit little-endian (5). The messages, from TensorBoard's protos:
//   Event       { double wall_time = 1; int64 step = 2; string file_version = 3;
//                 Summary summary = 5; SessionLog session_log = 7; }
//   Summary     { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
//   SessionLog  { SessionStatus status = 1; }   START = 1
#include "io/tensorboard.h"

#include "core/error.h"

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace finegpt {

static_assert(std::endian::native == std::endian::little, "the encoder writes host order");

namespace {

// The reflected Castagnoli polynomial 0x1EDC6F41.
constexpr std::array<uint32_t, 256> kCrc32cTable = [] {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}();

void put_varint(std::string &out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}

enum Wire { Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5 };

void put_key(std::string &out, int field, Wire wire) {
  put_varint(out, uint64_t(field) << 3 | wire);
}

void put_bytes(std::string &out, int field, const std::string &bytes) {
  put_key(out, field, Bytes);
  put_varint(out, bytes.size());
  out += bytes;
}

template <typename T> void put_fixed(std::string &out, int field, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  put_key(out, field, sizeof(T) == 4 ? Fixed32 : Fixed64);
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// The seconds field of an event file's name ("events.out.tfevents.<seconds>...."), or -1.
long long name_seconds(const std::string &name) {
  const std::string prefix = "events.out.tfevents.";
  if (name.rfind(prefix, 0) != 0) return -1;
  long long s = 0;
  size_t i = prefix.size(), start = i;
  for (; i < name.size() && i - start < 18 && name[i] >= '0' && name[i] <= '9'; ++i)
    s = s * 10 + (name[i] - '0');
  return i == start ? -1 : s;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  std::string h = buf;
  for (char &c : h)
    if (c == '/') c = '_';
  return h;
}

} // namespace

uint32_t crc32c(const void *data, size_t bytes, uint32_t crc) {
  const auto *p = static_cast<const uint8_t *>(data);
  crc = ~crc;
  for (size_t i = 0; i < bytes; ++i)
    crc = kCrc32cTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

EventWriter::EventWriter(const std::string &dir) {
  long long seconds = (long long)unix_seconds();
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(dir, ec))
    seconds = std::max(seconds, name_seconds(entry.path().filename().string()) + 1);
  if (ec) fail(dir, ": cannot list the folder for its event files (", ec.message(), ")");
  const std::string suffix = cat(".", host_name(), ".", getpid());
  for (int tries = 0; !file_; ++tries, ++seconds) {
    path_ = cat(dir, "/events.out.tfevents.", seconds, suffix);
    file_.reset(std::fopen(path_.c_str(), "wbx")); // never over another file
    if (!file_ && (errno != EEXIST || tries > 100))
      fail(path_, ": cannot create the TensorBoard event file (", std::strerror(errno), ")");
  }
  std::string payload;
  put_bytes(payload, 3, "brain.Event:2");
  write_event(0, payload);
}

EventWriter::~EventWriter() = default;

void EventWriter::restart(long step) {
  std::string log, payload;
  put_key(log, 1, Varint);
  put_varint(log, 1); // SessionLog.START
  put_bytes(payload, 7, log);
  write_event(step, payload);
}

void EventWriter::scalars(long step, const std::vector<std::pair<std::string, double>> &values) {
  std::string summary;
  for (const auto &[tag, v] : values) {
    std::string value;
    put_bytes(value, 1, tag);
    put_fixed(value, 2, float(v));
    put_bytes(summary, 1, value);
  }
  std::string payload;
  put_bytes(payload, 5, summary);
  write_event(step, payload);
}

void EventWriter::write_event(long step, const std::string &payload) {
  std::string event;
  put_fixed(event, 1, unix_seconds());
  put_key(event, 2, Varint);
  put_varint(event, uint64_t(int64_t(step)));
  event += payload;
  const uint64_t length = event.size();
  const uint32_t length_crc = mask_crc32c(crc32c(&length, sizeof length));
  const uint32_t data_crc = mask_crc32c(crc32c(event.data(), event.size()));
  FILE *f = file_.get();
  if (std::fwrite(&length, sizeof length, 1, f) != 1 ||
      std::fwrite(&length_crc, sizeof length_crc, 1, f) != 1 ||
      std::fwrite(event.data(), 1, event.size(), f) != event.size() ||
      std::fwrite(&data_crc, sizeof data_crc, 1, f) != 1 || std::fflush(f) != 0)
    fail(path_, ": cannot write the TensorBoard event (", std::strerror(errno), ")");
}

} // namespace finegpt
