// The GPU catalog (see gpus.h). Figures are dense (no 2:4 sparsity): NVIDIA datasheets print
// sparse tensor rates, halved here. GeForce cards run bf16/fp16 with fp32 accumulation at half
// their fp16-accumulate rate (llm.c llmc/mfu.h: a 4090 is 165.2, not 330.3); workstation and
// data-center cards run it at full rate. "~" marks a figure derived as tensor cores x per-core
// rate x boost clock (the per-core rate from the architecture whitepaper's flagship column, as
// llm.c's mfu.h does), not printed by NVIDIA.
//
// Usable memory is what cudaMemGetInfo reports as total. Where REFERENCE.md section 5 has a
// measurement we use it; otherwise usable() = nominal x 0.98, the smallest measured ratio (5090:
// 31.37 / 32; the 4090, 3090, A100 40GB and H100 measure 0.985-0.990), so that a plan never
// counts on memory the card lacks. Data-center GDDR cards (T4, A10, L4, L40S) ship with ECC on,
// and their inline ECC takes 1/16 of the memory (a T4 shows 15360 of 16384 MiB): usable_ecc() =
// nominal x 15/16 x 0.98. Workstation cards (RTX A6000, RTX 6000 Ada) ship with ECC off.
#include "plan/gpus.h"

#include "config/train_config.h"
#include "core/error.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

namespace finegpt {
namespace {

constexpr double kReserve = 0.98;        // usable / nominal when not measured (see above)
constexpr double kEccKeep = 15.0 / 16.0; // inline ECC on GDDR data-center cards

constexpr double usable(double nominal_gib) { return nominal_gib * kReserve; }
constexpr double usable_ecc(double nominal_gib) { return nominal_gib * kEccKeep * kReserve; }

// One catalog entry and how users name it. `names` are alternative sets of words, any one of
// which identifies the card (all its words must be given); `extra` are words a name may add
// without changing the card (the memory size and "gb" are always allowed).
struct Entry {
  GpuSpec spec;
  std::vector<std::string> names;
  std::string extra;
  // The driver's name for the variant users mean when they leave the variant out ("H100" is
  // the SXM): set on that one entry of a family; "" elsewhere.
  std::string common_as = "";
};

const char *const kGa102 = "NVIDIA Ampere GA102 GPU architecture whitepaper";
const char *const kAda = "NVIDIA Ada Lovelace GPU architecture whitepaper";

// Columns: name, sm, nominal GiB, usable GiB, bf16 TFLOP/s, fp32 TFLOP/s, GB/s, bf16, source.
const std::vector<Entry> &entries() {
  static const std::vector<Entry> table = {
      // GeForce Ampere (GA10x): 512 fp16/fp32-acc tensor FLOP per SM per clock (half rate).
      {{"RTX 3060 12GB", 8.6, 12, usable(12),
        25.5, // ~: 28 SMs x 512 x 1.777 GHz
        12.7, // 3584 cores x 2 x 1.777 GHz
        360, true,
        cat("NVIDIA GeForce RTX 3060 specifications; per-SM tensor rate from the ", kGa102,
            "; llm.c llmc/mfu.h")},
       {"3060"},
       ""},
      {{"RTX 3080 10GB", 8.6, 10, usable(10), 59.5, 29.8, 760, true,
        cat(kGa102, ", GeForce RTX 3080 column")},
       {"3080 10"},
       ""},
      {{"RTX 3080 12GB", 8.6, 12, usable(12),
        61.3, // ~: 70 SMs x 512 x 1.71 GHz
        30.6, // 8960 cores x 2 x 1.71 GHz
        912,  // 384-bit x 19 Gbps / 8
        true, cat("NVIDIA GeForce RTX 3080 12GB specifications; per-SM rates from the ", kGa102)},
       {"3080 12"},
       ""},
      {{"RTX 3090", 8.6, 24,
        23.70, // measured (REFERENCE.md section 5)
        71, 35.6, 936, true, cat(kGa102, ", GeForce RTX 3090 column")},
       {"3090"},
       ""},
      {{"RTX 3090 Ti", 8.6, 24, usable(24), 80, 40, 1008, true,
        cat(kAda, ", GeForce RTX 3090 Ti comparison column")},
       {"3090 ti"},
       ""},
      // GeForce Ada (AD10x): 512 fp16/fp32-acc tensor FLOP per SM per clock (half rate).
      {{"RTX 4060 Ti 8GB", 8.9, 8, usable(8),
        44.1, // ~: 34 SMs x 512 x 2.535 GHz
        22.1, // 4352 cores x 2 x 2.535 GHz
        288, true,
        cat("NVIDIA GeForce RTX 4060 Ti specifications; per-SM rates from the ", kAda,
            "; llm.c llmc/mfu.h")},
       {"4060 ti 8"},
       ""},
      {{"RTX 4060 Ti 16GB", 8.9, 16, usable(16),
        44.1, // ~: 34 SMs x 512 x 2.535 GHz
        22.1, // 4352 cores x 2 x 2.535 GHz
        288, true,
        cat("NVIDIA GeForce RTX 4060 Ti specifications; per-SM rates from the ", kAda,
            "; llm.c llmc/mfu.h")},
       {"4060 ti 16"},
       ""},
      {{"RTX 4070 Ti", 8.9, 12, usable(12),
        80.2, // ~: 60 SMs x 512 x 2.61 GHz
        40.1, // 7680 cores x 2 x 2.61 GHz
        504, true,
        cat("NVIDIA GeForce RTX 4070 Ti specifications; per-SM rates from the ", kAda,
            "; llm.c llmc/mfu.h")},
       {"4070 ti"},
       ""},
      {{"RTX 4080", 8.9, 16, usable(16), 97.5, 48.7, 716.8, true,
        cat(kAda, ", GeForce RTX 4080 column")},
       {"4080"},
       ""},
      {{"RTX 4090", 8.9, 24,
        23.64, // measured (REFERENCE.md section 5: 23.64-23.68; the lower)
        165.2, 82.6, 1008, true, cat(kAda, ", GeForce RTX 4090 column; llm.c llmc/mfu.h")},
       {"4090"},
       ""},
      // GeForce Blackwell (GB202).
      {{"RTX 5090", 12.0, 32,
        31.37, // measured (REFERENCE.md section 5)
        209.5, // ~: 170 SMs x 512 x 2.407 GHz; the whitepaper's fp32-accumulate rate unverified
        104.8, 1792, true, "NVIDIA RTX Blackwell GPU architecture whitepaper, GeForce RTX 5090"},
       {"5090"},
       ""},
      // Workstation cards: fp32 accumulation at full rate (llm.c's mfu.h counts them at the
      // GeForce half rate; the datasheets' tensor figures are full rate).
      {{"RTX A6000", 8.6, 48, usable(48),
        154.8, // datasheet 309.7 sparse, halved
        38.7, 768, true, "NVIDIA RTX A6000 datasheet"},
       {"a6000"},
       ""},
      {{"RTX 6000 Ada", 8.9, 48, usable(48),
        364.2, // datasheet 728.5 sparse, halved
        91.1, 960, true, cat("NVIDIA RTX 6000 Ada Generation datasheet; ", kAda)},
       {"6000 ada"},
       "generation"},
      // Data center.
      {{"L4", 8.9, 24,
        usable_ecc(24), // ECC on by default
        121,            // datasheet 242 sparse, halved
        30.3, 300, true, "NVIDIA L4 Tensor Core GPU datasheet"},
       {"l4"},
       "pcie"},
      {{"L40S", 8.9, 48,
        usable_ecc(48), // ECC on by default
        362,            // datasheet 733 sparse, halved (362.05)
        91.6, 864, true, "NVIDIA L40S GPU datasheet"},
       {"l40s"},
       "pcie"},
      {{"A10", 8.6, 24,
        usable_ecc(24), // ECC on by default
        125,            // datasheet 250 sparse, halved
        31.2, 600, true, "NVIDIA A10 Tensor Core GPU datasheet"},
       {"a10"},
       "pcie"},
      {{"T4", 7.5, 16,
        usable_ecc(16), // ECC on by default
        65,             // no bf16: the fp16 tensor rate (fp16/fp32 mixed precision)
        8.1, 320, false, "NVIDIA T4 Tensor Core GPU datasheet"},
       {"t4"},
       "pcie"},
      {{"V100 16GB", 7.0, 16, usable(16),
        125, // no bf16: the fp16 tensor rate (SXM2)
        15.7, 900, false, "NVIDIA V100 Tensor Core GPU datasheet, SXM2 column"},
       {"v100 16"},
       "sxm2"},
      {{"V100 32GB", 7.0, 32, usable(32),
        125, // no bf16: the fp16 tensor rate (SXM2)
        15.7, 900, false, "NVIDIA V100 Tensor Core GPU datasheet, SXM2 column"},
       {"v100 32"},
       "sxm2"},
      {{"A100 40GB SXM", 8.0, 40,
        39.56, // measured (REFERENCE.md section 5)
        312,   // datasheet 624 sparse, halved
        19.5, 1555, true, "NVIDIA A100 Tensor Core GPU datasheet, 40GB SXM column"},
       {"a100 40"},
       "sxm4"},
      {{"A100 80GB SXM", 8.0, 80, usable(80),
        312, // datasheet 624 sparse, halved
        19.5, 2039, true, "NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column"},
       {"a100 80"},
       "sxm4",
       "NVIDIA A100-SXM4-80GB"},
      {{"H100 PCIe", 9.0, 80, usable(80),
        756, // datasheet 1513 sparse, halved
        51, 2000, true, "NVIDIA H100 Tensor Core GPU datasheet, PCIe column"},
       {"h100 pcie"},
       ""},
      {{"H100 SXM", 9.0, 80,
        79.19, // measured (REFERENCE.md section 5)
        989,   // datasheet 1979 sparse, halved
        67, 3350, true, "NVIDIA H100 Tensor Core GPU datasheet, SXM column"},
       {"h100 sxm", "h100 hbm3"}, // the driver calls it "NVIDIA H100 80GB HBM3"
       "sxm5 hbm3",
       "NVIDIA H100 80GB HBM3"},
      {{"H200", 9.0, 141, usable(141),
        989, // datasheet 1979 sparse, halved
        67, 4800, true, "NVIDIA H200 Tensor Core GPU datasheet, SXM column"},
       {"h200"},
       "sxm"},
      {{"B200", 10.0, 180, usable(180),
        2250, // HGX B200 datasheet 36 PFLOP/s sparse for 8 GPUs, per GPU, halved
        75,   // ~: HGX B200 datasheet fp32 for 8 GPUs / 8; not printed per GPU
        8000, true, "NVIDIA HGX B200 / DGX B200 datasheet, per GPU (8 per system)"},
       {"b200"},
       "sxm"},
  };
  return table;
}

// Words a name is matched by: lower case, split at anything but letters and digits and between
// letters and digits ("rtx4090" -> rtx 4090, "a100-80gb" -> a 100 80 gb), the brand words
// (nvidia, geforce, rtx, tesla, quadro) dropped also when glued on ("geforcertx4090"), and
// "g"/"gib" read as "gb".
std::vector<std::string> words(const std::string &text) {
  static const char *const kNoise[] = {"nvidia", "geforce", "rtx", "tesla", "quadro"};
  std::vector<std::string> raw;
  std::string cur;
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (!std::isalnum(c)) {
      if (!cur.empty()) raw.push_back(cur);
      cur.clear();
      continue;
    }
    if (!cur.empty() && (std::isdigit((unsigned char)cur.back()) != 0) != (std::isdigit(c) != 0)) {
      raw.push_back(cur);
      cur.clear();
    }
    cur += static_cast<char>(std::tolower(c));
  }
  if (!cur.empty()) raw.push_back(cur);

  std::vector<std::string> out;
  for (std::string w : raw) {
    for (bool stripped = true; stripped && !w.empty();) {
      stripped = false;
      for (const char *n : kNoise)
        if (w.starts_with(n)) {
          w.erase(0, std::char_traits<char>::length(n));
          stripped = true;
        }
    }
    if (w == "g" || w == "gib") w = "gb";
    if (!w.empty()) out.push_back(w);
  }
  return out;
}

std::string joined(const std::vector<std::string> &ws) {
  std::string s;
  for (const std::string &w : ws)
    s += w;
  return s;
}

bool subset(const std::vector<std::string> &a, const std::set<std::string> &b) {
  return std::all_of(a.begin(), a.end(), [&](const std::string &w) { return b.count(w) != 0; });
}

// An entry prepared for matching.
struct Matcher {
  const GpuSpec *spec;
  std::vector<std::vector<std::string>> names; // each fully required
  std::set<std::string> allowed;               // every word the entry accepts
  std::string key;                             // joined words of the first name
  std::string common_as;                       // Entry::common_as
};

const std::vector<Matcher> &matchers() {
  static const std::vector<Matcher> out = [] {
    std::vector<Matcher> ms;
    const std::vector<GpuSpec> &specs = gpu_catalog();
    for (size_t i = 0; i < entries().size(); ++i) {
      const Entry &e = entries()[i];
      Matcher m{&specs[i], {}, {"gb"}, "", e.common_as};
      for (const std::string &n : e.names) {
        m.names.push_back(words(n));
        m.allowed.insert(m.names.back().begin(), m.names.back().end());
      }
      for (const std::string &w : words(e.extra))
        m.allowed.insert(w);
      m.allowed.insert(cat(static_cast<long long>(std::llround(e.spec.vram_gib))));
      m.key = joined(m.names.front());
      ms.push_back(std::move(m));
    }
    return ms;
  }();
  return out;
}

// "'A'", "'A' or 'B'", "'A', 'B' or 'C'".
std::string quoted_list(const std::vector<const GpuSpec *> &specs) {
  std::string s;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i > 0) s += i + 1 == specs.size() ? " or " : ", ";
    s += cat("'", specs[i]->name, "'");
  }
  return s;
}

} // namespace

const std::vector<GpuSpec> &gpu_catalog() {
  static const std::vector<GpuSpec> specs = [] {
    std::vector<GpuSpec> out;
    for (const Entry &e : entries())
      out.push_back(e.spec);
    return out;
  }();
  return specs;
}

// A name finds an entry when it gives every word of one of the entry's names and no word the
// entry does not accept: "3090" is the RTX 3090 (the 3090 Ti needs "ti"), "a100 80gb sxm" the
// A100 80GB. A name whose words several entries accept without naming one ("a100", "h100",
// "rtx 6000") is ambiguous; anything else is unknown, with the closest names suggested.
const GpuSpec &find_gpu(const std::string &name, std::string *note) {
  const std::vector<std::string> q = words(name);
  const std::set<std::string> qset(q.begin(), q.end());
  if (q.empty()) fail("GPU name '", name, "' names no GPU; see finegpt plan --list");

  std::vector<const GpuSpec *> full, partial, contained;
  for (const Matcher &m : matchers()) {
    bool accepted = subset(q, m.allowed);
    bool named = std::any_of(m.names.begin(), m.names.end(),
                             [&](const std::vector<std::string> &n) { return subset(n, qset); });
    if (accepted && named) full.push_back(m.spec);
    if (accepted) partial.push_back(m.spec);
    if (named) contained.push_back(m.spec);
  }
  if (full.size() == 1) return *full.front();
  if (full.size() > 1) partial = full; // a catalog clash; let the user pick
  if (partial.size() > 1 && note) {
    // Variants of one card with a common one: take it and say so.
    std::vector<const Matcher *> common;
    for (const Matcher &m : matchers())
      if (!m.common_as.empty() &&
          std::find(partial.begin(), partial.end(), m.spec) != partial.end())
        common.push_back(&m);
    if (common.size() == 1) {
      std::vector<const GpuSpec *> others;
      for (const GpuSpec *p : partial)
        if (p != common.front()->spec) others.push_back(p);
      *note =
          cat("'", name, "' is taken as '", common.front()->spec->name,
              "', the common one (the driver calls it \"", common.front()->common_as, "\"); say ",
              quoted_list(others), " for ", others.size() == 1 ? "the other" : "the others");
      return *common.front()->spec;
    }
  }
  if (partial.size() > 1)
    fail("GPU '", name, "' is ambiguous: ", quoted_list(partial),
         " (say which; see finegpt plan --list)");

  // Unknown. Suggest the one entry the words fit ("l40" -> L40S), else the entries the name
  // contains with words we do not know ("4080 super" -> RTX 4080), else the nearest spelling.
  std::vector<const GpuSpec *> suggest = !partial.empty() ? partial : contained;
  if (suggest.empty()) {
    std::vector<std::string> keys;
    for (const Matcher &m : matchers())
      keys.push_back(m.key);
    std::string hint = did_you_mean(joined(q), keys); // " (did you mean 'KEY'?)" or ""
    size_t a = hint.find('\'');
    size_t b = a == std::string::npos ? a : hint.find('\'', a + 1);
    if (b != std::string::npos) {
      std::string key = hint.substr(a + 1, b - a - 1);
      for (const Matcher &m : matchers())
        if (m.key == key) suggest.push_back(m.spec);
    }
  }
  std::string hint = suggest.empty() ? "" : cat(" (did you mean ", quoted_list(suggest), "?)");
  fail("unknown GPU '", name, "'", hint, "; see finegpt plan --list");
}

double peak_flops_of(const std::string &driver_name) noexcept {
  try {
    return find_gpu(driver_name).bf16_tflops * 1e12;
  } catch (const std::exception &) {
    return 0.0;
  }
}

// Units are binary whatever their spelling: users say "24GB" of a card with 24 GiB (the
// marketing number is the GiB count), so GB/G/GiB are GiB, MB/M/MiB are MiB and TB/T/TiB are
// TiB. No unit means GiB.
double parse_vram_gib(const std::string &text) {
  const char *const kExpect = "expected e.g. 24GB, 23.5GiB or 16384MiB";
  size_t begin = text.find_first_not_of(" \t");
  size_t end = text.find_last_not_of(" \t");
  if (begin == std::string::npos) fail("empty memory size (", kExpect, ")");
  const std::string t = text.substr(begin, end - begin + 1);
  if (t[0] == '-') fail("memory size '", text, "' is negative");

  size_t i = t[0] == '+' ? 1 : 0;
  size_t num_begin = i, digits = 0;
  while (i < t.size() && std::isdigit((unsigned char)t[i]))
    ++i, ++digits;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && std::isdigit((unsigned char)t[i]))
      ++i, ++digits;
  }
  if (digits == 0) fail("memory size '", text, "' is not a number (", kExpect, ")");
  double value = 0;
  auto [ptr, ec] =
      std::from_chars(t.data() + num_begin, t.data() + i, value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != t.data() + i)
    fail("memory size '", text, "' is not a number (", kExpect, ")");

  size_t u = t.find_first_not_of(" \t", i);
  std::string unit;
  for (size_t k = u == std::string::npos ? t.size() : u; k < t.size(); ++k)
    unit += static_cast<char>(std::tolower((unsigned char)t[k]));
  double scale = 0;
  if (unit.empty() || unit == "g" || unit == "gb" || unit == "gib")
    scale = 1;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    scale = 1.0 / 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib")
    scale = 1024;
  else
    fail("memory size '", text, "': unknown unit '", t.substr(u), "' (use GB, GiB, MB, MiB or TB)");

  double gib = value * scale;
  if (!(gib > 0)) fail("memory size '", text, "' must be more than 0");
  if (gib > 4096)
    fail("memory size '", text, "' is ", gib, " GiB: more than any GPU has (4096 GiB at most)");
  return gib;
}

} // namespace finegpt
