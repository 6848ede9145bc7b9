// Tests for the GPU catalog (plan/gpus.h): the cards issue 4 lists, the invariants of every
// entry, forgiving name matching with its ambiguity and unknown-name errors, and --vram parsing.
#include "plan/gpus.h"

#include "core/error.h"

#include "testing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <vector>

namespace finegpt {
namespace {
using namespace finegpt::testutil;

// The message of the Error `f` throws; fails the test when it throws nothing.
const GpuSpec *by_name(const std::string &name) {
  for (const GpuSpec &g : gpu_catalog())
    if (g.name == name) return &g;
  return nullptr;
}

const std::vector<std::string> kListed = {"RTX 3060 12GB",
                                          "RTX 3080 10GB",
                                          "RTX 3080 12GB",
                                          "RTX 3090",
                                          "RTX 3090 Ti",
                                          "RTX 4060 Ti 8GB",
                                          "RTX 4060 Ti 16GB",
                                          "RTX 4070 Ti",
                                          "RTX 4080",
                                          "RTX 4090",
                                          "RTX 5090",
                                          "RTX A6000",
                                          "RTX 6000 Ada",
                                          "L4",
                                          "L40S",
                                          "T4",
                                          "V100 16GB",
                                          "V100 32GB",
                                          "A10",
                                          "A100 40GB SXM",
                                          "A100 80GB SXM",
                                          "H100 PCIe",
                                          "H100 SXM",
                                          "H200",
                                          "B200"};

TEST(GpuCatalog, EveryListedCardIsPresentOnce) {
  for (const std::string &name : kListed) {
    EXPECT_NE(by_name(name), nullptr) << name;
    EXPECT_EQ(std::count_if(gpu_catalog().begin(), gpu_catalog().end(),
                            [&](const GpuSpec &g) { return g.name == name; }),
              1)
        << name;
  }
  std::set<std::string> names;
  for (const GpuSpec &g : gpu_catalog())
    EXPECT_TRUE(names.insert(g.name).second) << "duplicate " << g.name;
}

TEST(GpuCatalog, Invariants) {
  for (const GpuSpec &g : gpu_catalog()) {
    SCOPED_TRACE(g.name);
    EXPECT_GT(g.sm, 6.9);
    EXPECT_LT(g.sm, 13.0);
    EXPECT_GT(g.vram_gib, 0);
    EXPECT_GT(g.usable_gib, 0);
    EXPECT_LE(g.usable_gib, g.vram_gib);
    EXPECT_GE(g.usable_gib, 0.9 * g.vram_gib); // no reserve beyond ECC plus the context
    EXPECT_GT(g.fp32_tflops, 0);
    EXPECT_GT(g.bf16_tflops, 0);
    EXPECT_LT(g.fp32_tflops, g.bf16_tflops);
    EXPECT_GT(g.bandwidth_gbs, 0);
    EXPECT_EQ(g.bf16, g.sm >= 8.0);
    EXPECT_FALSE(g.source.empty());
    EXPECT_NE(g.source.find("NVIDIA"), std::string::npos); // names the document
  }
}

TEST(GpuCatalog, KeyFigures) {
  // Dense rates, bf16 with fp32 accumulation: a 4090 is 165.2, not the fp16-accumulate 330.3 or
  // the sparse 660.6; an H100 SXM is 989, not the sparse 1979.
  EXPECT_DOUBLE_EQ(by_name("RTX 4090")->bf16_tflops, 165.2);
  EXPECT_DOUBLE_EQ(by_name("RTX 4090")->fp32_tflops, 82.6);
  EXPECT_DOUBLE_EQ(by_name("RTX 3090")->bf16_tflops, 71);
  EXPECT_DOUBLE_EQ(by_name("H100 SXM")->bf16_tflops, 989);
  EXPECT_DOUBLE_EQ(by_name("H100 PCIe")->bf16_tflops, 756);
  EXPECT_DOUBLE_EQ(by_name("A100 80GB SXM")->bf16_tflops, 312);
  EXPECT_DOUBLE_EQ(by_name("A100 80GB SXM")->bandwidth_gbs, 2039);
  EXPECT_DOUBLE_EQ(by_name("A100 40GB SXM")->bandwidth_gbs, 1555);
  EXPECT_DOUBLE_EQ(by_name("H200")->vram_gib, 141);
  EXPECT_DOUBLE_EQ(by_name("H200")->bandwidth_gbs, 4800);
  EXPECT_DOUBLE_EQ(by_name("L40S")->bf16_tflops, 362);
  EXPECT_DOUBLE_EQ(by_name("RTX 6000 Ada")->bf16_tflops, 364.2);
  EXPECT_DOUBLE_EQ(by_name("V100 32GB")->vram_gib, 32);
  EXPECT_DOUBLE_EQ(by_name("RTX 3080 10GB")->vram_gib, 10);
  EXPECT_DOUBLE_EQ(by_name("RTX 3080 12GB")->vram_gib, 12);
  // No bf16 before sm 8.0: the fp16 tensor rate stands in.
  EXPECT_FALSE(by_name("T4")->bf16);
  EXPECT_DOUBLE_EQ(by_name("T4")->bf16_tflops, 65);
  EXPECT_FALSE(by_name("V100 16GB")->bf16);
  EXPECT_DOUBLE_EQ(by_name("V100 16GB")->bf16_tflops, 125);
  EXPECT_TRUE(by_name("A100 40GB SXM")->bf16);
}

TEST(GpuCatalog, UsableMemory) {
  // Measured (REFERENCE.md section 5).
  EXPECT_DOUBLE_EQ(by_name("RTX 4090")->usable_gib, 23.64);
  EXPECT_DOUBLE_EQ(by_name("RTX 3090")->usable_gib, 23.70);
  EXPECT_DOUBLE_EQ(by_name("RTX 5090")->usable_gib, 31.37);
  EXPECT_DOUBLE_EQ(by_name("A100 40GB SXM")->usable_gib, 39.56);
  EXPECT_DOUBLE_EQ(by_name("H100 SXM")->usable_gib, 79.19);
  // The rule elsewhere: nominal x 0.98, and x 15/16 more with ECC on (data-center GDDR).
  EXPECT_NEAR(by_name("RTX 3090 Ti")->usable_gib, 24 * 0.98, 1e-9);
  EXPECT_NEAR(by_name("A100 80GB SXM")->usable_gib, 80 * 0.98, 1e-9);
  EXPECT_NEAR(by_name("RTX A6000")->usable_gib, 48 * 0.98, 1e-9);
  EXPECT_NEAR(by_name("T4")->usable_gib, 16 * 15.0 / 16 * 0.98, 1e-9);
  EXPECT_NEAR(by_name("L40S")->usable_gib, 48 * 15.0 / 16 * 0.98, 1e-9);
  EXPECT_LT(by_name("L4")->usable_gib, 22.5); // a driver shows 23034 MiB with ECC on
}

TEST(FindGpu, EveryCatalogNameFindsItself) {
  for (const GpuSpec &g : gpu_catalog()) {
    EXPECT_EQ(find_gpu(g.name).name, g.name);
    std::string dashed; // "rtx-3090-ti"
    for (char c : g.name)
      dashed += c == ' ' ? '-' : static_cast<char>(std::tolower((unsigned char)c));
    EXPECT_EQ(find_gpu(dashed).name, g.name) << dashed;
    EXPECT_EQ(find_gpu("NVIDIA " + g.name).name, g.name);
  }
}

TEST(FindGpu, ForgivingNames) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"4090", "RTX 4090"},
      {"rtx4090", "RTX 4090"},
      {"RTX 4090", "RTX 4090"},
      {"GeForce RTX 4090", "RTX 4090"},
      {"NVIDIA GeForce RTX 4090", "RTX 4090"},
      {"geforcertx4090", "RTX 4090"},
      {"RTX-4090", "RTX 4090"},
      {"4090 24GB", "RTX 4090"},
      {"  rtx_4090 ", "RTX 4090"},
      {"3090", "RTX 3090"},
      {"RTX 3090 Ti", "RTX 3090 Ti"},
      {"3090ti", "RTX 3090 Ti"},
      {"3090-TI", "RTX 3090 Ti"},
      {"3060", "RTX 3060 12GB"},
      {"rtx 3060 12gb", "RTX 3060 12GB"},
      {"3080 10gb", "RTX 3080 10GB"},
      {"3080 12GB", "RTX 3080 12GB"},
      {"4060 ti 16gb", "RTX 4060 Ti 16GB"},
      {"4060ti 8gb", "RTX 4060 Ti 8GB"},
      {"4070 ti", "RTX 4070 Ti"},
      {"4080", "RTX 4080"},
      {"5090", "RTX 5090"},
      {"a6000", "RTX A6000"},
      {"RTX A6000", "RTX A6000"},
      {"Quadro RTX A6000", "RTX A6000"},
      {"6000 ada", "RTX 6000 Ada"},
      {"RTX 6000 Ada Generation", "RTX 6000 Ada"},
      {"NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"},
      {"l4", "L4"},
      {"L40S", "L40S"},
      {"l40s", "L40S"},
      {"t4", "T4"},
      {"Tesla T4", "T4"},
      {"a10", "A10"},
      {"NVIDIA A10", "A10"},
      {"v100 16gb", "V100 16GB"},
      {"Tesla V100-SXM2-16GB", "V100 16GB"},
      {"v100 32", "V100 32GB"},
      {"a100 80", "A100 80GB SXM"},
      {"A100-80GB", "A100 80GB SXM"},
      {"a100 80gb sxm", "A100 80GB SXM"},
      {"NVIDIA A100-SXM4-80GB", "A100 80GB SXM"},
      {"a100 40gb", "A100 40GB SXM"},
      {"NVIDIA A100-SXM4-40GB", "A100 40GB SXM"},
      {"h100 sxm", "H100 SXM"},
      {"H100-SXM5", "H100 SXM"},
      {"NVIDIA H100 80GB HBM3", "H100 SXM"},
      {"h100 pcie", "H100 PCIe"},
      {"NVIDIA H100 PCIe", "H100 PCIe"},
      {"h200", "H200"},
      {"b200", "B200"},
  };
  for (const auto &[input, want] : cases) {
    try {
      EXPECT_EQ(find_gpu(input).name, want) << input;
    } catch (const Error &e) {
      ADD_FAILURE() << input << ": " << e.what();
    }
  }
}

TEST(FindGpu, ReturnsTheCatalogEntry) {
  const GpuSpec &g = find_gpu("4090");
  EXPECT_EQ(&g, by_name("RTX 4090"));
}

TEST(FindGpu, AmbiguousNamesListTheCandidates) {
  std::string e = error_of([] { find_gpu("a100"); });
  EXPECT_NE(e.find("'a100' is ambiguous"), std::string::npos) << e;
  EXPECT_NE(e.find("'A100 40GB SXM'"), std::string::npos) << e;
  EXPECT_NE(e.find("'A100 80GB SXM'"), std::string::npos) << e;
  EXPECT_EQ(e.find("'A10'"), std::string::npos) << e;

  e = error_of([] { find_gpu("H100"); });
  EXPECT_NE(e.find("'H100 PCIe'"), std::string::npos) << e;
  EXPECT_NE(e.find("'H100 SXM'"), std::string::npos) << e;
  EXPECT_NE(e.find("see finegpt plan --list"), std::string::npos) << e;
  EXPECT_EQ(e.find("H200"), std::string::npos) << e;

  e = error_of([] { find_gpu("h100 80gb"); });
  EXPECT_NE(e.find("'H100 PCIe' or 'H100 SXM'"), std::string::npos) << e;

  e = error_of([] { find_gpu("rtx 6000"); });
  EXPECT_NE(e.find("'RTX A6000'"), std::string::npos) << e;
  EXPECT_NE(e.find("'RTX 6000 Ada'"), std::string::npos) << e;

  e = error_of([] { find_gpu("3080"); });
  EXPECT_NE(e.find("'RTX 3080 10GB' or 'RTX 3080 12GB'"), std::string::npos) << e;

  e = error_of([] { find_gpu("4060 Ti"); });
  EXPECT_NE(e.find("'RTX 4060 Ti 8GB' or 'RTX 4060 Ti 16GB'"), std::string::npos) << e;

  e = error_of([] { find_gpu("Tesla V100"); });
  EXPECT_NE(e.find("'V100 16GB' or 'V100 32GB'"), std::string::npos) << e;

  e = error_of([] { find_gpu("a100 sxm"); });
  EXPECT_NE(e.find("ambiguous"), std::string::npos) << e;
}

TEST(FindGpu, ACommonVariantIsTakenOnlyWhenAsked) {
  std::string note;
  EXPECT_EQ(find_gpu("H100", &note).name, "H100 SXM");
  EXPECT_NE(note.find("'H100' is taken as 'H100 SXM'"), std::string::npos) << note;
  EXPECT_NE(note.find("\"NVIDIA H100 80GB HBM3\""), std::string::npos) << note;
  EXPECT_NE(note.find("say 'H100 PCIe' for the other"), std::string::npos) << note;
  note.clear();
  EXPECT_EQ(find_gpu("h100 80gb", &note).name, "H100 SXM");
  note.clear();
  EXPECT_EQ(find_gpu("A100", &note).name, "A100 80GB SXM");
  EXPECT_NE(note.find("say 'A100 40GB SXM' for the other"), std::string::npos) << note;
  note.clear();
  EXPECT_EQ(find_gpu("a100 sxm", &note).name, "A100 80GB SXM");
  // A full name takes no note; a family without a common variant stays ambiguous.
  note.clear();
  EXPECT_EQ(find_gpu("h100 pcie", &note).name, "H100 PCIe");
  EXPECT_EQ(find_gpu("a100 40gb", &note).name, "A100 40GB SXM");
  EXPECT_EQ(note, "");
  for (const char *name : {"rtx 6000", "3080", "4060 ti", "v100"}) {
    std::string e = error_of([&] { find_gpu(name, &note); });
    EXPECT_NE(e.find("ambiguous"), std::string::npos) << name << ": " << e;
    EXPECT_EQ(note, "") << name;
  }
  // The driver's names are what the common variants are called.
  EXPECT_EQ(find_gpu("NVIDIA H100 80GB HBM3").name, "H100 SXM");
  EXPECT_EQ(find_gpu("NVIDIA A100-SXM4-80GB").name, "A100 80GB SXM");
}

TEST(FindGpu, SimilarNamesAreNotConfused) {
  EXPECT_EQ(find_gpu("3090").name, "RTX 3090");
  EXPECT_EQ(find_gpu("3090 ti").name, "RTX 3090 Ti");
  EXPECT_EQ(find_gpu("a6000").name, "RTX A6000");
  EXPECT_EQ(find_gpu("6000 ada").name, "RTX 6000 Ada");
  EXPECT_EQ(find_gpu("a10").name, "A10");
  EXPECT_EQ(find_gpu("l4").name, "L4");
  EXPECT_EQ(find_gpu("h200").name, "H200");
  // Words of another card are not ignored.
  EXPECT_NE(error_of([] { find_gpu("4090 ti"); }).find("unknown GPU"), std::string::npos);
  EXPECT_NE(error_of([] { find_gpu("a6000 ada"); }).find("unknown GPU"), std::string::npos);
  EXPECT_NE(error_of([] { find_gpu("v100 40gb"); }).find("unknown GPU"), std::string::npos);
}

TEST(FindGpu, UnknownNamesSuggestTheClosest) {
  EXPECT_EQ(error_of([] { find_gpu("rtx 4095"); }),
            "unknown GPU 'rtx 4095' (did you mean 'RTX 4090'?); see finegpt plan --list");
  // The words fit one card but do not name it.
  EXPECT_EQ(error_of([] { find_gpu("L40"); }),
            "unknown GPU 'L40' (did you mean 'L40S'?); see finegpt plan --list");
  // A card we have, with words we do not know.
  EXPECT_EQ(error_of([] { find_gpu("RTX 4080 Super"); }),
            "unknown GPU 'RTX 4080 Super' (did you mean 'RTX 4080'?); see finegpt plan --list");
  EXPECT_EQ(
      error_of([] { find_gpu("RTX 4090 Laptop GPU"); }),
      "unknown GPU 'RTX 4090 Laptop GPU' (did you mean 'RTX 4090'?); see finegpt plan --list");
  // Nothing close: no suggestion.
  EXPECT_EQ(error_of([] { find_gpu("Radeon RX 7900 XTX"); }),
            "unknown GPU 'Radeon RX 7900 XTX'; see finegpt plan --list");
  // No model named at all.
  EXPECT_NE(error_of([] { find_gpu(""); }).find("names no GPU"), std::string::npos);
  EXPECT_NE(error_of([] { find_gpu("NVIDIA GeForce RTX"); }).find("names no GPU"),
            std::string::npos);
}

TEST(ParseVram, Sizes) {
  EXPECT_DOUBLE_EQ(parse_vram_gib("24GB"), 24);
  EXPECT_DOUBLE_EQ(parse_vram_gib("24gb"), 24);
  EXPECT_DOUBLE_EQ(parse_vram_gib("24 GiB"), 24);
  EXPECT_DOUBLE_EQ(parse_vram_gib("24"), 24);
  EXPECT_DOUBLE_EQ(parse_vram_gib(" 24 "), 24);
  EXPECT_DOUBLE_EQ(parse_vram_gib("23.5G"), 23.5);
  EXPECT_DOUBLE_EQ(parse_vram_gib("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(parse_vram_gib(".5GB"), 0.5);
  EXPECT_DOUBLE_EQ(parse_vram_gib("16384MiB"), 16);
  EXPECT_DOUBLE_EQ(parse_vram_gib("16384 MB"), 16);
  EXPECT_DOUBLE_EQ(parse_vram_gib("24564M"), 24564.0 / 1024);
  EXPECT_DOUBLE_EQ(parse_vram_gib("2TB"), 2048);
  EXPECT_DOUBLE_EQ(parse_vram_gib("1 TiB"), 1024);
  EXPECT_DOUBLE_EQ(parse_vram_gib("4096GB"), 4096);
}

TEST(ParseVram, Errors) {
  EXPECT_NE(error_of([] { parse_vram_gib(""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("   "); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("abc"); }).find("'abc' is not a number"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("GB"); }).find("not a number"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("-3GB"); }).find("negative"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("0"); }).find("more than 0"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("0.0GB"); }).find("more than 0"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("5TB"); }).find("4096 GiB at most"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("5000"); }).find("4096 GiB at most"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("24XB"); }).find("unknown unit 'XB'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("24GBs"); }).find("unknown unit"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("1e3"); }).find("unknown unit"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("24 GB extra"); }).find("unknown unit"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("nan"); }).find("not a number"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("inf"); }).find("not a number"), std::string::npos);
  EXPECT_NE(error_of([] { parse_vram_gib("1.2.3"); }).find("unknown unit"), std::string::npos);
  // The message names the input.
  EXPECT_NE(error_of([] { parse_vram_gib("-3GB"); }).find("'-3GB'"), std::string::npos);
}

// MFU's denominator from the name the driver reports: the catalog's dense bf16 figure, 0 for a
// card the catalog does not know or cannot tell apart (no MFU rather than a wrong one).
TEST(Gpus, PeakFlopsFromDriverNames) {
  EXPECT_DOUBLE_EQ(peak_flops_of("NVIDIA H100 80GB HBM3"), 989.0e12);
  EXPECT_DOUBLE_EQ(peak_flops_of("NVIDIA H100 PCIe"), 756.0e12);
  EXPECT_DOUBLE_EQ(peak_flops_of("NVIDIA GeForce RTX 4090"), 165.2e12);
  EXPECT_DOUBLE_EQ(peak_flops_of("NVIDIA A100-SXM4-80GB"), 312.0e12);
  EXPECT_EQ(peak_flops_of("NVIDIA A100"), 0.0);        // 40GB or 80GB
  EXPECT_EQ(peak_flops_of("Some Future GPU X1"), 0.0); // not in the catalog
  EXPECT_EQ(peak_flops_of(""), 0.0);
}

} // namespace
} // namespace finegpt
