// The TensorBoard event writer: CRC-32C and its TFRecord mask against published and independent
// values, the file's name and first record. (tests/cli/test_watch.py reads whole files back
// with TensorBoard's own reader.)
#include "core/file.h"
#include "io/tensorboard.h"
#include "testing.h"

#include <cstring>
#include <filesystem>
#include <gtest/gtest.h>

namespace finegpt {
namespace {

using testutil::TempDir;

TEST(Crc32c, PublishedCheckValue) {
  // The CRC-32C catalogue's check value: CRC of the nine ASCII digits "123456789".
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Continuing a CRC over a second piece gives the CRC of the whole.
  EXPECT_EQ(crc32c("56789", 5, crc32c("1234", 4)), 0xE3069283u);
}

TEST(Crc32c, MaskAsTensorBoard) {
  // TensorBoard's own masked_crc32c (its pure-Python TFRecord reader) of "123456789" and of "".
  EXPECT_EQ(mask_crc32c(crc32c("123456789", 9)), 0xC78AB0E5u);
  EXPECT_EQ(mask_crc32c(crc32c("", 0)), 0xA282EAD8u);
}

std::vector<std::string> event_files(const TempDir &d) {
  std::vector<std::string> names;
  for (const auto &e : std::filesystem::directory_iterator(d.path))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(EventWriter, FirstRecordIsTheFileVersion) {
  TempDir d;
  std::string path;
  {
    EventWriter w(d.path.string());
    path = w.path();
  }
  const std::string bytes = read_file(path);
  ASSERT_EQ(bytes.size(), 8u + 4 + 26 + 4);
  uint64_t length;
  std::memcpy(&length, bytes.data(), 8);
  EXPECT_EQ(length, 26u); // wall_time (1 + 8), step 0 (2), file_version (2 + 13)
  uint32_t length_crc, data_crc;
  std::memcpy(&length_crc, bytes.data() + 8, 4);
  std::memcpy(&data_crc, bytes.data() + 12 + 26, 4);
  EXPECT_EQ(length_crc, mask_crc32c(crc32c(bytes.data(), 8)));
  EXPECT_EQ(data_crc, mask_crc32c(crc32c(bytes.data() + 12, 26)));
  EXPECT_EQ(bytes[12], '\x09'); // field 1, 64-bit
  EXPECT_EQ(bytes.substr(21, 2), std::string("\x10\x00", 2));
  EXPECT_EQ(bytes.substr(23, 15), "\x1a\x0d"
                                  "brain.Event:2");
}

TEST(EventWriter, NewFilesSortAfterTheFolder) {
  TempDir d;
  // A file from "the future" (a clock set back since, or a run started this second).
  std::FILE *f = std::fopen(d.file("events.out.tfevents.4000000000.other.1").c_str(), "w");
  std::fclose(f);
  EventWriter a(d.path.string());
  EventWriter b(d.path.string());
  const auto names = event_files(d);
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0], "events.out.tfevents.4000000000.other.1");
  EXPECT_EQ(d.path / names[1], std::filesystem::path(a.path()));
  EXPECT_EQ(d.path / names[2], std::filesystem::path(b.path()));
  EXPECT_EQ(names[1].rfind("events.out.tfevents.4000000001.", 0), 0u) << names[1];
}

TEST(EventWriter, UnwritableFolderIsAnError) {
  const std::string msg = testutil::error_of([] { EventWriter w("/nonexistent/finegpt"); });
  EXPECT_NE(msg.find("/nonexistent/finegpt"), std::string::npos) << msg;
}

} // namespace
} // namespace finegpt
