// Parquet and Arrow IPC inputs through Arrow C++ (the libraries and headers of the pyarrow
// wheel; see CMakeLists.txt). Only the text column is read: Parquet one row group at a time in
// record batches of kBatchRows (buffered page reads, so a row group is never whole in memory),
// Arrow IPC one record batch (message) at a time. Columns of type string, large_string,
// string_view, binary (taken as bytes) or a dictionary of those. A build without Arrow has
// source_arrow_stub.cpp instead.
#include "core/error.h"
#include "data/source_impl.h"

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/ipc/reader.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/exception.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>

namespace finegpt {

namespace {

constexpr int64_t kBatchRows = 1024;

// Arrow reports errors as Status / Result; ours name the file.
void check(const arrow::Status &st, const std::string &path, const char *what) {
  if (!st.ok()) fail(path, ": ", what, " (", st.message(), ")");
}
template <typename T> T take(arrow::Result<T> r, const std::string &path, const char *what) {
  check(r.status(), path, what);
  return std::move(r).ValueUnsafe();
}

bool is_text_type(const arrow::DataType &t) {
  switch (t.id()) {
  case arrow::Type::STRING:
  case arrow::Type::LARGE_STRING:
  case arrow::Type::STRING_VIEW:
  case arrow::Type::BINARY:
  case arrow::Type::LARGE_BINARY:
  case arrow::Type::BINARY_VIEW:
    return true;
  case arrow::Type::DICTIONARY:
    return is_text_type(*static_cast<const arrow::DictionaryType &>(t).value_type());
  default:
    return false;
  }
}

// Row i of a text-typed array; false for a null.
bool text_at(const arrow::Array &a, int64_t i, std::string_view &out) {
  if (a.IsNull(i)) return false;
  switch (a.type_id()) {
  case arrow::Type::STRING:
    out = static_cast<const arrow::StringArray &>(a).GetView(i);
    return true;
  case arrow::Type::LARGE_STRING:
    out = static_cast<const arrow::LargeStringArray &>(a).GetView(i);
    return true;
  case arrow::Type::STRING_VIEW:
    out = static_cast<const arrow::StringViewArray &>(a).GetView(i);
    return true;
  case arrow::Type::BINARY:
    out = static_cast<const arrow::BinaryArray &>(a).GetView(i);
    return true;
  case arrow::Type::LARGE_BINARY:
    out = static_cast<const arrow::LargeBinaryArray &>(a).GetView(i);
    return true;
  case arrow::Type::BINARY_VIEW:
    out = static_cast<const arrow::BinaryViewArray &>(a).GetView(i);
    return true;
  case arrow::Type::DICTIONARY: {
    const auto &d = static_cast<const arrow::DictionaryArray &>(a);
    return text_at(*d.dictionary(), d.GetValueIndex(i), out);
  }
  default:
    return false;
  }
}

// The type of t's layout that holds bytes: binary for string, and so on (t itself when it is
// one of those). Validating as this type checks every offset and length, not the UTF-8.
std::shared_ptr<arrow::DataType> bytes_type(const std::shared_ptr<arrow::DataType> &t) {
  switch (t->id()) {
  case arrow::Type::STRING:
    return arrow::binary();
  case arrow::Type::LARGE_STRING:
    return arrow::large_binary();
  case arrow::Type::STRING_VIEW:
    return arrow::binary_view();
  case arrow::Type::DICTIONARY: {
    const auto &d = static_cast<const arrow::DictionaryType &>(*t);
    return arrow::dictionary(d.index_type(), bytes_type(d.value_type()), d.ordered());
  }
  default:
    return t;
  }
}

// The index of the text column in `schema`; Error listing the columns when there is none, or
// naming its type when it is not text.
int find_text_column(const arrow::Schema &schema, const std::string &name,
                     const std::string &path) {
  int i = schema.GetFieldIndex(name);
  if (i < 0) {
    std::string cols;
    for (const auto &f : schema.fields())
      cols += (cols.empty() ? "" : ", ") + f->name();
    fail(path, ": no column '", name, "' (columns: ", cols.empty() ? "none" : cols,
         "); choose one with --text-column");
  }
  const auto &type = *schema.field(i)->type();
  if (!is_text_type(type))
    fail(path, ": column '", name, "' has type ", type.ToString(),
         ", not text (string or binary); choose another with --text-column");
  return i;
}

// Rows of record batches -> documents. The subclasses fetch the batches.
class BatchSource : public FileSource {
public:
  explicit BatchSource(const InputFile &f) : path_(f.path), bytes_(f.bytes) {}

  size_t read(std::vector<Document> &out, size_t max_docs, size_t max_bytes) override {
    size_t n = 0, bytes = 0;
    while (n < max_docs && bytes < max_bytes) {
      if (!cur_ || row_ >= cur_->length()) {
        if (!next_array()) break;
        continue;
      }
      Document &d = out.emplace_back();
      std::string_view v;
      if (text_at(*cur_, row_, v)) {
        d.text.assign(v);
        bytes += v.size();
      } else {
        d.kind = Document::Kind::NotText;
      }
      d.record = uint64_t(rows_done_);
      row_++, rows_done_++, n++;
    }
    return n;
  }

  uint64_t skip(uint64_t n) override {
    uint64_t k = 0;
    while (k < n) {
      if (cur_ && row_ < cur_->length()) {
        int64_t t = std::min<int64_t>(cur_->length() - row_, int64_t(n - k));
        row_ += t, rows_done_ += t, k += uint64_t(t);
        continue;
      }
      k += skip_whole(n - k);
      if (k == n || !next_array()) break;
    }
    return k;
  }

protected:
  // Sets cur_ to the next batch's text column (row_ = 0); false at the end of the file.
  virtual bool fetch() = 0;
  // Skips up to n rows without decoding them where the format allows (Parquet row groups).
  virtual uint64_t skip_whole(uint64_t) { return 0; }

  // Arrow does not validate the arrays it reads (an IPC file's offsets are taken as stored), so
  // a damaged file could make text_at read outside its buffers: each batch's column is checked
  // in full first (as bytes: text that is not UTF-8 is still read, as bytes).
  bool next_array() {
    try {
      if (!fetch()) return false;
    } catch (const parquet::ParquetException &e) {
      fail(path_, ": corrupt Parquet data (", e.what(), ")");
    }
    auto bytes = take(cur_->View(bytes_type(cur_->type())), path_, "corrupt text column");
    check(bytes->ValidateFull(), path_, "corrupt text column");
    return true;
  }

  std::string path_;
  uint64_t bytes_;
  std::shared_ptr<arrow::Array> cur_;
  int64_t row_ = 0;       // in cur_
  int64_t rows_done_ = 0; // in the file
};

std::unique_ptr<parquet::arrow::FileReader> open_parquet(const std::string &path) {
  try {
    parquet::ReaderProperties props(arrow::default_memory_pool());
    props.enable_buffered_stream(); // pages streamed, not whole column chunks
    props.set_buffer_size(int64_t(1) << 20);
    parquet::ArrowReaderProperties aprops;
    aprops.set_batch_size(kBatchRows);
    aprops.set_use_threads(false);
    aprops.set_pre_buffer(false);
    parquet::arrow::FileReaderBuilder builder;
    check(builder.OpenFile(path, false, props), path, "cannot read the Parquet footer");
    builder.properties(aprops);
    return take(builder.Build(), path, "cannot open the Parquet file");
  } catch (const parquet::ParquetException &e) {
    fail(path, ": corrupt Parquet file (", e.what(), ")");
  }
}

class ParquetSource : public BatchSource {
public:
  ParquetSource(const InputFile &f, const SourceOptions &opt) : BatchSource(f) {
    reader_ = open_parquet(path_);
    std::shared_ptr<arrow::Schema> schema;
    check(reader_->GetSchema(&schema), path_, "cannot read the Parquet schema");
    int field = find_text_column(*schema, opt.text_column, path_);
    const auto &sf = reader_->manifest().schema_fields[size_t(field)];
    FINEGPT_CHECK(sf.is_leaf(), path_, ": column '", opt.text_column, "' is nested, not text");
    leaf_ = sf.column_index;
    meta_ = reader_->parquet_reader()->metadata();
    groups_ = meta_->num_row_groups();
    rows_total_ = meta_->num_rows();
  }

  uint64_t bytes_done() const override {
    return rows_total_ ? uint64_t(double(bytes_) * double(rows_done_) / double(rows_total_)) : 0;
  }

protected:
  // A row group's reader is dropped as soon as its last batch is out (by the row count in
  // the metadata), so that skip_whole can pass over the following groups undecoded.
  bool fetch() override {
    for (;;) {
      if (!batches_) {
        if (group_ >= groups_) return false;
        batches_ = take(reader_->GetRecordBatchReader({group_}, {leaf_}), path_,
                        "cannot read a Parquet row group");
        group_left_ = meta_->RowGroup(group_)->num_rows();
      }
      std::shared_ptr<arrow::RecordBatch> b;
      check(batches_->ReadNext(&b), path_, "corrupt Parquet data");
      if (b) group_left_ -= b->num_rows();
      if (!b || group_left_ <= 0) batches_.reset(), group_++;
      if (b) {
        cur_ = b->column(0), row_ = 0;
        return true;
      }
    }
  }

  uint64_t skip_whole(uint64_t n) override {
    uint64_t k = 0;
    while (!batches_ && group_ < groups_) {
      uint64_t rows = uint64_t(meta_->RowGroup(group_)->num_rows());
      if (k + rows > n) break;
      k += rows, rows_done_ += int64_t(rows), group_++;
    }
    return k;
  }

private:
  std::unique_ptr<parquet::arrow::FileReader> reader_;
  std::shared_ptr<parquet::FileMetaData> meta_;
  std::unique_ptr<arrow::RecordBatchReader> batches_;
  int leaf_ = 0, groups_ = 0, group_ = 0;
  int64_t rows_total_ = 0, group_left_ = 0;
};

class IpcSource : public BatchSource {
public:
  IpcSource(const InputFile &f, const SourceOptions &opt) : BatchSource(f) {
    file_ = take(arrow::io::ReadableFile::Open(path_), path_, "cannot open");
    std::shared_ptr<arrow::Schema> schema;
    if (f.kind == InputKind::ArrowFile) {
      random_ = take(arrow::ipc::RecordBatchFileReader::Open(file_), path_,
                     "not a readable Arrow IPC file");
      schema = random_->schema();
    } else {
      stream_ = take(arrow::ipc::RecordBatchStreamReader::Open(file_), path_,
                     "not a readable Arrow IPC stream");
      schema = stream_->schema();
    }
    column_ = find_text_column(*schema, opt.text_column, path_);
  }

  uint64_t bytes_done() const override {
    if (random_)
      return random_->num_record_batches()
                 ? bytes_ * uint64_t(next_) / uint64_t(random_->num_record_batches())
                 : 0;
    auto pos = file_->Tell();
    return pos.ok() ? uint64_t(*pos) : 0;
  }

protected:
  bool fetch() override {
    std::shared_ptr<arrow::RecordBatch> b;
    if (random_) {
      if (next_ >= random_->num_record_batches()) return false;
      b = take(random_->ReadRecordBatch(next_++), path_, "truncated or corrupt Arrow IPC file");
    } else {
      check(stream_->ReadNext(&b), path_, "truncated or corrupt Arrow IPC stream");
      if (!b) return false;
    }
    cur_ = b->column(column_), row_ = 0;
    return true;
  }

private:
  std::shared_ptr<arrow::io::ReadableFile> file_;
  std::shared_ptr<arrow::ipc::RecordBatchStreamReader> stream_;
  std::shared_ptr<arrow::ipc::RecordBatchFileReader> random_;
  int column_ = 0, next_ = 0;
};

} // namespace

void check_arrow_input(const InputFile &f, const SourceOptions &opt) { open_arrow_source(f, opt); }

std::unique_ptr<FileSource> open_arrow_source(const InputFile &f, const SourceOptions &opt) {
  if (f.kind == InputKind::Parquet) return std::make_unique<ParquetSource>(f, opt);
  return std::make_unique<IpcSource>(f, opt);
}

std::string arrow_description() {
  return cat("Arrow ", arrow::GetBuildInfo().version_string,
             " from the pyarrow wheel (Parquet, Arrow IPC)");
}

} // namespace finegpt
