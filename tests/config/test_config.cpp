// Tests for the config language (pyconfig.h) and TrainConfig loading, validation and printing.
#include "config/pyconfig.h"
#include "config/train_config.h"
#include "core/error.h"

#include "testing.h"

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

namespace finegpt {
namespace {
using namespace finegpt::testutil;

using py::Value;

// A fresh directory per test, removed afterwards.
class ConfigTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/finegpt_config_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string &name, const std::string &text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::string dir_;
};

// The Error message thrown by f ("" when it does not throw).
#define EXPECT_ERROR_HAS(stmt, ...)                                                                \
  do {                                                                                             \
    std::string msg_ = error_of([&] { stmt; });                                                    \
    EXPECT_FALSE(msg_.empty()) << #stmt << " did not throw";                                       \
    for (const std::string &part_ : std::vector<std::string>{__VA_ARGS__})                         \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "'" << part_ << "' not in: " << msg_;      \
  } while (0)

Value ev(const std::string &expr) { return py::eval(expr, "expr"); }

TrainConfig load(const std::vector<std::string> &args, std::vector<std::string> *notes = nullptr) {
  return load_train_config(args, notes);
}

// ---------------------------------------------------------------------------------------------
// Defaults and the key table

TEST(ConfigDefaults, MatchNanoGPT) {
  TrainConfig c = load({});
  EXPECT_EQ(c, TrainConfig{});
  EXPECT_EQ(c.gradient_accumulation_steps, 40);
  EXPECT_EQ(c.beta2, 0.95);
  EXPECT_EQ(c.beta1, 0.9);
  EXPECT_EQ(c.batch_size, 12);
  EXPECT_EQ(c.block_size, 1024);
  EXPECT_EQ(c.learning_rate, 6e-4);
  EXPECT_EQ(c.min_lr, 6e-5);
  EXPECT_EQ(c.max_iters, 600000);
  EXPECT_EQ(c.lr_decay_iters, 600000);
  EXPECT_EQ(c.weight_decay, 0.1);
  EXPECT_EQ(c.eval_interval, 2000);
  EXPECT_EQ(c.log_interval, 1);
  EXPECT_EQ(c.out_dir, "out");
  EXPECT_EQ(c.wandb_project, "owt");
  EXPECT_EQ(c.dataset, "openwebtext");
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.init_from, "scratch");
  EXPECT_FALSE(c.bias);
  EXPECT_TRUE(c.compile);
  EXPECT_NO_THROW(validate(c));
}

TEST(ConfigDefaults, KeysInDeclarationOrder) {
  const std::vector<std::string> nanogpt = {
      "out_dir",        "eval_interval",  "log_interval",
      "eval_iters",     "eval_only",      "always_save_checkpoint",
      "init_from",      "wandb_log",      "wandb_project",
      "wandb_run_name", "dataset",        "gradient_accumulation_steps",
      "batch_size",     "block_size",     "n_layer",
      "n_head",         "n_embd",         "dropout",
      "bias",           "learning_rate",  "max_iters",
      "weight_decay",   "beta1",          "beta2",
      "grad_clip",      "decay_lr",       "warmup_iters",
      "lr_decay_iters", "min_lr",         "backend",
      "device",         "dtype",          "compile",
      "seed",           "data_dir",       "data_order",
      "threads",        "vocab_size",     "recipe",
      "rotary",         "norm",           "qk_norm",
      "mlp_activation", "tie_embeddings", "zero_init_proj",
      "logit_softcap",  "optimizer",      "muon_lr",
      "muon_momentum",  "embedding_lr",   "head_lr",
      "recompute",      "zero_stage",     "dist_timeout",
      "attention",      "offload",        "tokens_per_step"};
  EXPECT_EQ(train_config_keys(), nanogpt);
}

// ---------------------------------------------------------------------------------------------
// The config language

TEST(PyConfig, NumbersAndPrecedence) {
  EXPECT_EQ(ev("5 * 8"), Value(40L));
  EXPECT_EQ(ev("1e-3 / 2"), Value(0.0005));
  EXPECT_EQ(ev("7 / 2"), Value(3.5));
  EXPECT_EQ(ev("6 / 3"), Value(2.0)); // int / int is a float
  EXPECT_EQ(ev("7 // 2"), Value(3L));
  EXPECT_EQ(ev("-7 // 2"), Value(-4L));
  EXPECT_EQ(ev("-7 % 3"), Value(2L));
  EXPECT_EQ(ev("7 % -3"), Value(-2L));
  EXPECT_EQ(ev("-7.5 // 2"), Value(-4.0));
  EXPECT_EQ(ev("7.5 % 2"), Value(1.5));
  EXPECT_EQ(ev("-1.0 % 3"), Value(2.0));
  EXPECT_EQ(ev("2 ** 10"), Value(1024L));
  EXPECT_EQ(ev("2 ** -1"), Value(0.5));
  EXPECT_EQ(ev("-2 ** 2"), Value(-4L));
  EXPECT_EQ(ev("2 ** 3 ** 2"), Value(512L));
  EXPECT_EQ(ev("2 * 3 ** 2"), Value(18L));
  EXPECT_EQ(ev("1 + 2 * 3"), Value(7L));
  EXPECT_EQ(ev("(1 + 2) * 3"), Value(9L));
  EXPECT_EQ(ev("10 - 2 - 3"), Value(5L));
  EXPECT_EQ(ev("100 / 10 / 5"), Value(2.0));
  EXPECT_EQ(ev("- -3"), Value(3L));
  EXPECT_EQ(ev("1_000 + 0x10 + 0o10 + 0b10"), Value(1026L));
  EXPECT_EQ(ev("1."), Value(1.0));
  EXPECT_EQ(ev(".5"), Value(0.5));
  EXPECT_EQ(ev("6e-4"), Value(6e-4));
  EXPECT_EQ(ev("True + 1"), Value(2L));
  EXPECT_EQ(ev("1 + 2.5"), Value(3.5));
  EXPECT_EQ(ev("True"), Value(true));
  EXPECT_EQ(ev("None"), Value(std::monostate{}));
  EXPECT_ERROR_HAS(ev("1 / 0"), "expr: ", "division by zero");
  EXPECT_ERROR_HAS(ev("1 % 0.0"), "division by zero");
  EXPECT_ERROR_HAS(ev("9223372036854775807 + 1"), "overflow");
  EXPECT_ERROR_HAS(ev("99999999999999999999"), "too large");
  EXPECT_ERROR_HAS(ev("007"), "leading zeros");
  EXPECT_ERROR_HAS(ev("(-8) ** 0.5"), "complex");
}

TEST(PyConfig, Strings) {
  EXPECT_EQ(ev("'a' + \"b\""), Value(std::string("ab")));
  EXPECT_EQ(ev("'ab' 'cd'"), Value(std::string("abcd")));
  EXPECT_EQ(ev(R"('it\'s\n\t\\ \x41\u00e9')"), Value(std::string("it's\n\t\\ A\xc3\xa9")));
  EXPECT_EQ(ev(R"(r'a\nb')"), Value(std::string("a\\nb")));
  EXPECT_EQ(ev("'-' * 3"), Value(std::string("---")));
  EXPECT_EQ(ev("'''tri'ple'''"), Value(std::string("tri'ple")));
  EXPECT_ERROR_HAS(ev("'x' + 1"), "unsupported operand types for +: str and int", "str(x)");
  EXPECT_ERROR_HAS(ev("'abc"), "unterminated string");
  EXPECT_ERROR_HAS(ev("f'{x}'"), "f-strings");
}

TEST(PyConfig, Conversions) {
  EXPECT_EQ(ev("str(1e-3)"), Value(std::string("0.001")));
  EXPECT_EQ(ev("str(0.1 + 0.2)"), Value(std::string("0.30000000000000004")));
  EXPECT_EQ(ev("str(100.0)"), Value(std::string("100.0")));
  EXPECT_EQ(ev("str(5 * 8) + str(True) + str(None)"), Value(std::string("40TrueNone")));
  EXPECT_EQ(ev("int('42') + int(3.9) + int(-3.9)"), Value(42L));
  EXPECT_EQ(ev("float(' 1e-3 ')"), Value(1e-3));
  EXPECT_EQ(ev("float(2)"), Value(2.0));
  EXPECT_ERROR_HAS(ev("int('4.5')"), "invalid literal for int()");
  EXPECT_ERROR_HAS(ev("float('abc')"), "could not convert");
  EXPECT_ERROR_HAS(ev("len('abc')"), "len() is not supported");
}

TEST(PyConfig, FloatReprLikePython) {
  EXPECT_EQ(py::float_repr(1e-4), "0.0001");
  EXPECT_EQ(py::float_repr(1e-5), "1e-05");
  EXPECT_EQ(py::float_repr(6e-5), "6e-05");
  EXPECT_EQ(py::float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(py::float_repr(1e16), "1e+16");
  EXPECT_EQ(py::float_repr(1.2345678901234568e+17), "1.2345678901234568e+17");
  EXPECT_EQ(py::float_repr(123.456), "123.456");
  EXPECT_EQ(py::float_repr(0.0), "0.0");
  EXPECT_EQ(py::float_repr(-0.0), "-0.0");
  EXPECT_EQ(py::float_repr(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(py::repr(Value(std::string("it's"))), "\"it's\"");
  EXPECT_EQ(py::repr(Value(std::string("a'b\"c\n"))), R"('a\'b"c\n')");
  // Every finite double reads back bit for bit.
  std::mt19937_64 rng(1);
  for (int k = 0; k < 20000; ++k) {
    uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    if (!std::isfinite(d)) continue;
    Value back = ev(py::repr(Value(d)));
    ASSERT_TRUE(std::holds_alternative<double>(back)) << py::repr(Value(d));
    double b = std::get<double>(back);
    ASSERT_EQ(std::memcmp(&b, &d, sizeof d), 0) << py::repr(Value(d));
  }
}

TEST(PyConfig, RunRecordsLinesAndNames) {
  auto got = py::run("import time\nfrom os import path\n\n# comment\na = 1  # trailing\n"
                     "b = (a +\n     2)\nc = 'x' + \\\n  'y'; d = b * 2\nd += 1\n",
                     "f.py");
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].name, "a");
  EXPECT_EQ(got[0].line, 5);
  EXPECT_EQ(got[1].name, "b");
  EXPECT_EQ(got[1].value, Value(3L));
  EXPECT_EQ(got[1].line, 6);
  EXPECT_EQ(got[2].value, Value(std::string("xy")));
  EXPECT_EQ(got[2].line, 8);
  EXPECT_EQ(got[3].name, "d");
  EXPECT_EQ(got[3].value, Value(6L));
  EXPECT_EQ(got[4].value, Value(7L));
  EXPECT_EQ(got[4].line, 10);
}

TEST(PyConfig, SyntaxErrorsNameFileAndLine) {
  EXPECT_ERROR_HAS(py::run("a = 1\nif a:\n    b = 2\n", "c.py"), "c.py:2: ", "'if'");
  EXPECT_ERROR_HAS(py::run("def f():\n  pass\n", "c.py"), "c.py:1: ", "'def'");
  EXPECT_ERROR_HAS(py::run("a = 1\nb = 2 +\n", "c.py"), "c.py:2: ", "expected a value");
  EXPECT_ERROR_HAS(py::run("a = foo\n", "c.py"), "c.py:1: ", "name 'foo' is not defined");
  EXPECT_ERROR_HAS(py::run("\n\nbetas = (0.9, 0.95)\n", "c.py"), "c.py:3: ", "tuples");
  EXPECT_ERROR_HAS(py::run("a = [1]\n", "c.py"), "c.py:1: ", "lists");
  EXPECT_ERROR_HAS(py::run("print('x')\n", "c.py"), "c.py:1: ", "print()");
  EXPECT_ERROR_HAS(py::run("a = 1 2\n", "c.py"), "c.py:1: ", "number 2");
  EXPECT_ERROR_HAS(py::run("a = 1\n  b = 2\n", "c.py"), "c.py:2: ", "indent");
  EXPECT_ERROR_HAS(py::run("a = 'x\n", "c.py"), "c.py:1: ", "unterminated");
  EXPECT_ERROR_HAS(py::run("a = (1 +\n2\nb = 3\n", "c.py"), "c.py:3: ");
  EXPECT_ERROR_HAS(py::run("a = (1 +\n2\n", "c.py"), "c.py:1: ", "never closed");
  EXPECT_ERROR_HAS(py::run("a == 1\n", "c.py"), "c.py:1: ", "expected `a = value`");
  EXPECT_ERROR_HAS(py::run("a = 1 if 2 else 3\n", "c.py"), "c.py:1: ", "'if'");
  EXPECT_ERROR_HAS(py::run("x += 1\n", "c.py"), "c.py:1: ", "name 'x' is not defined");
}

// ---------------------------------------------------------------------------------------------
// Loading TrainConfig

const char *kConfig160M = R"(out_dir = 'out-fineweb-160M'
eval_interval = 1000
eval_iters = 200
log_interval = 100
always_save_checkpoint = True
wandb_log = True
wandb_project = 'fineweb'
wandb_run_name = '160M-fineweb'
dataset = 'fineweb'
gradient_accumulation_steps = 16   # 32 * 16 = 512 effective batch size
batch_size = 32
block_size = 1024                  # important
n_layer = 10
n_head = 10
n_embd = 640
dropout = 0.0
learning_rate = 6e-4
max_iters = 50000
warmup_iters = 2000
lr_decay_iters = 50000
min_lr = 6e-5
beta2 = 0.99
compile = True
bias = False
weight_decay = 0.1
)";

TEST_F(ConfigTest, Config160MVerbatim) {
  std::vector<std::string> notes;
  TrainConfig c = load({write("fineweb_160M.py", kConfig160M)}, &notes);
  TrainConfig want;
  want.out_dir = "out-fineweb-160M";
  want.eval_interval = 1000;
  want.eval_iters = 200;
  want.log_interval = 100;
  want.always_save_checkpoint = true;
  want.wandb_log = true;
  want.wandb_project = "fineweb";
  want.wandb_run_name = "160M-fineweb";
  want.dataset = "fineweb";
  want.gradient_accumulation_steps = 16;
  want.batch_size = 32;
  want.block_size = 1024;
  want.n_layer = 10;
  want.n_head = 10;
  want.n_embd = 640;
  want.dropout = 0.0;
  want.learning_rate = 6e-4;
  want.max_iters = 50000;
  want.warmup_iters = 2000;
  want.lr_decay_iters = 50000;
  want.min_lr = 6e-5;
  want.beta2 = 0.99;
  want.compile = true;
  want.bias = false;
  want.weight_decay = 0.1;
  EXPECT_EQ(c, want);
  EXPECT_EQ(c.n_embd, 640);
  EXPECT_EQ(c.beta2, 0.99);
  EXPECT_EQ(c.wandb_run_name, "160M-fineweb");
  EXPECT_NO_THROW(validate(c));
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "compile: finegpt's kernels are compiled ahead of time; ignored");
  EXPECT_EQ(notes[1], "wandb_log: finegpt does not talk to Weights & Biases itself (wandb_run_name "
                      "unused); to send it the run's TensorBoard event files: wandb sync "
                      "--sync-tensorboard --project fineweb out-fineweb-160M");
}

TEST_F(ConfigTest, TimeAndNames) {
  double before =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  TrainConfig c = load({write("ft.py", "import time\n"
                                       "wandb_run_name = 'ft-' + str(time.time())\n"
                                       "max_iters = 5000\n"
                                       "lr_decay_iters = max_iters\n"
                                       "warmup_iters = max_iters // 10\n"
                                       "min_lr = learning_rate / 10\n"
                                       "batch_size *= 2\n")});
  ASSERT_EQ(c.wandb_run_name.rfind("ft-", 0), 0u) << c.wandb_run_name;
  double t = std::strtod(c.wandb_run_name.c_str() + 3, nullptr);
  EXPECT_GE(t, before - 1);
  EXPECT_LE(t, before + 60);
  EXPECT_EQ(c.lr_decay_iters, 5000);
  EXPECT_EQ(c.warmup_iters, 500);
  EXPECT_EQ(c.min_lr, 6e-4 / 10);
  EXPECT_EQ(c.batch_size, 24);
}

TEST_F(ConfigTest, LaterArgumentsWin) {
  std::string a = write("a.py", "batch_size = 8\nn_layer = 3\n");
  std::string b = write("b.py", "batch_size = 16\n");
  EXPECT_EQ(load({a, b}).batch_size, 16);
  EXPECT_EQ(load({b, a}).batch_size, 8);
  EXPECT_EQ(load({a, "--batch_size=4"}).batch_size, 4);
  EXPECT_EQ(load({"--batch_size=4", a}).batch_size, 8);
  EXPECT_EQ(load({"--batch_size=4", a}).n_layer, 3);
  // A later file sees the values set before it.
  std::string c = write("c.py", "n_head = n_layer * 2\n");
  EXPECT_EQ(load({"--n_layer=5", c}).n_head, 10);
}

TEST_F(ConfigTest, FlagValues) {
  TrainConfig c = load({"--out_dir=out-x", "--init_from=resume", "--device=cuda:0",
                        "--learning_rate=1e-3", "--dataset=123", "--wandb_run_name='q r'",
                        "--max_iters=5*8", "--compile=False", "--data_dir="});
  EXPECT_EQ(c.out_dir, "out-x");
  EXPECT_EQ(c.init_from, "resume");
  EXPECT_EQ(c.device, "cuda:0");
  EXPECT_EQ(c.learning_rate, 1e-3);
  EXPECT_EQ(c.dataset, "123");
  EXPECT_EQ(c.wandb_run_name, "q r");
  EXPECT_EQ(c.max_iters, 40);
  EXPECT_FALSE(c.compile);
  EXPECT_EQ(c.data_dir, "");
}

TEST_F(ConfigTest, IntForFloatAndNoneDefaults) {
  TrainConfig c = load({write("f.py", "learning_rate = 1\ndata_dir = 'x'\nvocab_size = 65\n"),
                        "--dropout=0", "--min_lr=2"});
  EXPECT_EQ(c.learning_rate, 1.0);
  EXPECT_EQ(c.dropout, 0.0);
  EXPECT_EQ(c.min_lr, 2.0);
  EXPECT_EQ(c.vocab_size, 65);
  c = load(
      {write("g.py", "data_dir = 'x'\nvocab_size = 65\ndata_dir = None\nvocab_size = None\n")});
  EXPECT_EQ(c.data_dir, "");
  EXPECT_EQ(c.vocab_size, 0);
}

TEST_F(ConfigTest, TypeMismatches) {
  std::string f = write("t.py", "\nn_layer = 12.0\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":2: n_layer expects an int, got float 12.0 (write 12)"));
  f = write("t2.py", "batch_size = '12'\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":1: "), "batch_size", "int", "str '12'");
  f = write("t3.py", "bias = 1\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":1: "), "bias expects True or False, got int 1");
  f = write("t4.py", "compile = None\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":1: "), "compile", "None");
  f = write("t5.py", "n_layer = True\n");
  EXPECT_ERROR_HAS(load({f}), "n_layer expects an int, got bool True");
  f = write("t6.py", "out_dir = 5\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":1: out_dir expects a str, got int 5"));
  f = write("t7.py", "dropout = 'high'\n");
  EXPECT_ERROR_HAS(load({f}), "dropout expects a float, got str 'high'");
  EXPECT_ERROR_HAS(load({"--n_layer=abc"}), "--n_layer: n_layer expects an int, got str 'abc'");
  EXPECT_ERROR_HAS(load({"--bias=1"}), "--bias: bias expects True or False, got int 1");
  EXPECT_ERROR_HAS(load({"--compile=true"}), "--compile: ", "True or False", "'true'");
  EXPECT_ERROR_HAS(load({"--dropout=None"}), "--dropout: ", "got None");
  EXPECT_ERROR_HAS(load({"--vocab_size=1.5"}), "--vocab_size: ", "an int or None", "float 1.5");
}

TEST_F(ConfigTest, UnknownKeysSuggest) {
  std::string f = write("u.py", "learning_rate = 1e-3\nlerning_rate = 1e-3\n");
  EXPECT_EQ(error_of([&] { load({f}); }),
            f + ":2: unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
  EXPECT_EQ(error_of([&] { load({"--lerning_rate=1e-3"}); }),
            "--lerning_rate: unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
  EXPECT_EQ(error_of([&] { load({"--nlayer=2"}); }),
            "--nlayer: unknown key 'nlayer' (did you mean 'n_layer'?)");
  std::string far = error_of([&] { load({"--zzzzqqqq=1"}); });
  EXPECT_NE(far.find("unknown key 'zzzzqqqq'"), std::string::npos) << far;
  EXPECT_EQ(far.find("did you mean"), std::string::npos) << far;
}

TEST_F(ConfigTest, BadArguments) {
  EXPECT_ERROR_HAS(load({dir_ + "/missing.py"}), "config file '", "missing.py' not found");
  EXPECT_ERROR_HAS(load({"batch_size=4"}), "'batch_size=4' not found", "--key=value");
  EXPECT_ERROR_HAS(load({"--compile"}), "--compile: expected --compile=value");
  EXPECT_ERROR_HAS(load({dir_}), "is a directory");
  std::string f = write("s.py", "n_layer = 4\nn_head = (4 +\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":2: "), "never closed");
  f = write("s2.py", "n_layer = 4\nfor i in range(3):\n  n_layer = i\n");
  EXPECT_ERROR_HAS(load({f}), (f + ":2: "), "'for'");
}

TEST_F(ConfigTest, Notes) {
  std::vector<std::string> notes;
  load({}, &notes);
  EXPECT_TRUE(notes.empty());
  load(
      {"--compile=False", "--wandb_project=x", "--dtype=float32", "--device=cpu", "--backend=gloo"},
      &notes);
  EXPECT_TRUE(notes.empty()) << notes[0];
  load({"--compile=True", "--compile=True", "--wandb_log=True", "--out_dir=o"}, &notes);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "compile: finegpt's kernels are compiled ahead of time; ignored");
  EXPECT_EQ(notes[1], "wandb_log: finegpt does not talk to Weights & Biases itself; to send it "
                      "the run's TensorBoard event files: wandb sync --sync-tensorboard --project "
                      "owt o");
  notes.clear();
  // Words a shell would split or expand are quoted.
  load({"--wandb_log=True", "--wandb_project=it's mine", "--out_dir=runs/a b"}, &notes);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], "wandb_log: finegpt does not talk to Weights & Biases itself; to send it "
                      "the run's TensorBoard event files: wandb sync --sync-tensorboard --project "
                      "'it'\\''s mine' 'runs/a b'");
  notes.clear();
  load({"--device=cpu", "--dtype=bfloat16", "--backend=mpi"}, &notes);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "dtype: the CPU backend trains in float32");
  EXPECT_NE(notes[1].find("backend: 'mpi'"), std::string::npos) << notes[1];
  notes.clear();
  load({"--device=cpu"}, &notes); // the default dtype was not asked for
  EXPECT_TRUE(notes.empty());
}

// ---------------------------------------------------------------------------------------------
// validate() and to_python()

TEST(ConfigValidate, Errors) {
  auto bad = [](const std::function<void(TrainConfig &)> &edit) {
    TrainConfig c;
    edit(c);
    return error_of([&] { validate(c); });
  };
  auto has = [](const std::string &msg, const std::string &part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  };
  has(bad([](TrainConfig &c) { c.n_embd = 650; }),
      "n_embd (650) must be divisible by n_head (12): try n_embd = 648 or 660");
  has(bad([](TrainConfig &c) { c.n_layer = 0; }), "n_layer must be at least 1 (got 0)");
  has(bad([](TrainConfig &c) { c.batch_size = -1; }), "batch_size");
  has(bad([](TrainConfig &c) { c.eval_iters = 0; }), "eval_iters");
  has(bad([](TrainConfig &c) { c.log_interval = 0; }), "log_interval");
  has(bad([](TrainConfig &c) { c.max_iters = -1; }), "max_iters must be >= 0");
  has(bad([](TrainConfig &c) { c.dropout = 1.0; }), "dropout must be in [0, 1) (got 1.0)");
  has(bad([](TrainConfig &c) { c.beta2 = 1.0; }), "beta2 must be in [0, 1)");
  has(bad([](TrainConfig &c) { c.learning_rate = NAN; }), "learning_rate must be >= 0");
  has(bad([](TrainConfig &c) { c.grad_clip = -1; }), "grad_clip");
  has(bad([](TrainConfig &c) { c.lr_decay_iters = 100; }),
      "lr_decay_iters (100) must be >= warmup_iters (2000)");
  has(bad([](TrainConfig &c) { c.data_order = "shuffled"; }),
      "data_order must be 'random' or 'sequential'");
  has(bad([](TrainConfig &c) { c.device = "mps"; }), "device='mps': Apple GPUs are not supported");
  has(bad([](TrainConfig &c) { c.device = "tpu"; }), "device='tpu' is not supported");
  has(bad([](TrainConfig &c) { c.device = "cuda:"; }), "device='cuda:' is not supported");
  has(bad([](TrainConfig &c) { c.dtype = "fp16"; }), "dtype must be");
  has(bad([](TrainConfig &c) { c.init_from = ""; }),
      "init_from must be 'scratch', 'resume', 'gpt2'");
  has(bad([](TrainConfig &c) { c.threads = -1; }), "threads must be >= 0");
  has(bad([](TrainConfig &c) { c.vocab_size = -1; }), "vocab_size must be >= 0");
  // and what is fine
  auto good = [](const std::function<void(TrainConfig &)> &edit) {
    TrainConfig c;
    edit(c);
    EXPECT_NO_THROW(validate(c));
  };
  good([](TrainConfig &c) {
    c.lr_decay_iters = 100;
    c.decay_lr = false;
    c.device = "cuda:1";
    c.dtype = "float32";
    c.init_from = "resume";
    c.data_order = "sequential";
    c.max_iters = 0;
  });
  good([](TrainConfig &c) { c.init_from = "models/gpt2_124M.bin"; });
  good([](TrainConfig &c) { c.init_from = "gpt2-xl"; }); // resolved when the run starts
}

TEST_F(ConfigTest, ToPythonRoundTrip) {
  std::string text = to_python(TrainConfig{});
  EXPECT_EQ(text.rfind("out_dir = 'out'\n", 0), 0u) << text;
  for (const char *line : {"\ngradient_accumulation_steps = 40\n", "\nbeta2 = 0.95\n",
                           "\nbias = False\n", "\nlearning_rate = 0.0006\n", "\nmin_lr = 6e-05\n",
                           "\ncompile = True\n", "\ndata_dir = ''\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), long(train_config_keys().size()));
  EXPECT_EQ(load({write("default.py", text)}), TrainConfig{});

  // Every key differs from its default, so a key missing from the table cannot round-trip.
  TrainConfig c;
  c.out_dir = "out 'quoted' \"both\" \\ back\nslash \xc3\xa9";
  c.eval_interval = 7;
  c.log_interval = 3;
  c.eval_iters = 11;
  c.eval_only = true;
  c.always_save_checkpoint = false;
  c.init_from = "resume";
  c.wandb_log = true;
  c.wandb_project = "p";
  c.wandb_run_name = "it's";
  c.dataset = "shakespeare_char";
  c.gradient_accumulation_steps = 1;
  c.batch_size = 64;
  c.block_size = 256;
  c.n_layer = 6;
  c.n_head = 6;
  c.n_embd = 384;
  c.dropout = 0.2;
  c.bias = true;
  c.learning_rate = 1.0 / 3.0;
  c.max_iters = LONG_MAX;
  c.weight_decay = 1e-300;
  c.beta1 = 0.1 + 0.2;
  c.beta2 = 0.99;
  c.grad_clip = 3e20;
  c.decay_lr = false;
  c.warmup_iters = LONG_MIN;
  c.lr_decay_iters = 5000;
  c.min_lr = -0.0;
  c.backend = "gloo";
  c.device = "cpu";
  c.dtype = "float32";
  c.compile = false;
  c.seed = -5;
  c.data_dir = "\t";
  c.data_order = "sequential";
  c.threads = 2;
  c.vocab_size = 65;
  c.recompute = 2;
  c.zero_stage = 1;
  c.dist_timeout = 12.5;
  c.attention = "cudnn";
  c.tokens_per_step = 1 << 19;
  TrainConfig back = load({write("round.py", to_python(c))});
  EXPECT_EQ(back, c);
  EXPECT_TRUE(std::signbit(back.min_lr));
  c.batch_size = 0; // 'auto'
  EXPECT_NE(to_python(c).find("\nbatch_size = 'auto'\n"), std::string::npos);
  EXPECT_EQ(load({write("auto.py", to_python(c))}).batch_size, 0);
  std::string lines = "\n" + to_python(c);
  for (const std::string &k : train_config_keys())
    EXPECT_NE(lines.find("\n" + k + " = "), std::string::npos) << k;
}

TEST_F(ConfigTest, BatchSizeAutoAndPlanKeys) {
  EXPECT_EQ(load({"--batch_size='auto'"}).batch_size, 0);
  EXPECT_EQ(load({write("a.py", "batch_size = 'auto'\n")}).batch_size, 0);
  EXPECT_ERROR_HAS(load({write("b.py", "batch_size = 'big'\n")}), "b.py:1", "batch_size", "'auto'");
  EXPECT_ERROR_HAS(load({"--n_layer='auto'"}), "n_layer", "an int");
  TrainConfig c;
  c.recompute = 4;
  EXPECT_ERROR_HAS(validate(c), "recompute");
  c.recompute = 0, c.zero_stage = 2;
  EXPECT_ERROR_HAS(validate(c), "zero_stage");
  c.zero_stage = 0, c.attention = "flash";
  EXPECT_ERROR_HAS(validate(c), "attention", "'flash'", "'cudnn'");
  c.attention = "cudnn", c.dropout = 0.1;
  EXPECT_ERROR_HAS(validate(c), "attention = 'cudnn'", "dropout");
  c.dropout = 0.0;
  validate(c);
}

TEST_F(ConfigTest, ArchitectureOptions) {
  TrainConfig d;
  EXPECT_FALSE(d.rotary || d.qk_norm || d.zero_init_proj || !d.tie_embeddings);
  EXPECT_EQ(d.norm, "layernorm");
  EXPECT_EQ(d.mlp_activation, "gelu");
  EXPECT_EQ(d.logit_softcap, 0.0);
  TrainConfig c = load({write("arch.py", "rotary = True\nnorm = 'rmsnorm'\nqk_norm = True\n"
                                         "mlp_activation = 'relu2'\ntie_embeddings = False\n"
                                         "zero_init_proj = True\nlogit_softcap = 30\n")});
  EXPECT_TRUE(c.rotary && c.qk_norm && c.zero_init_proj && !c.tie_embeddings);
  EXPECT_EQ(c.norm, "rmsnorm");
  EXPECT_EQ(c.mlp_activation, "relu2");
  EXPECT_EQ(c.logit_softcap, 30.0);
  validate(c);
  EXPECT_EQ(load({write("back.py", to_python(c))}), c);
  c.norm = "batchnorm";
  EXPECT_ERROR_HAS(validate(c), "norm", "'batchnorm'", "'rmsnorm'");
  c.norm = "rmsnorm", c.mlp_activation = "swiglu";
  EXPECT_ERROR_HAS(validate(c), "mlp_activation", "'swiglu'", "'relu2'");
  c.mlp_activation = "relu2", c.logit_softcap = -1;
  EXPECT_ERROR_HAS(validate(c), "logit_softcap", ">= 0");
  c.logit_softcap = 15, c.n_embd = 36, c.n_head = 4; // head size 9
  EXPECT_ERROR_HAS(validate(c), "rotary", "even head size", "9");
  c.n_embd = 768, c.n_head = 12, c.init_from = "gpt2";
  EXPECT_ERROR_HAS(validate(c), "init_from = 'gpt2'", "rotary = True", "norm = 'rmsnorm'",
                   "tie_embeddings = False", "init_from = 'scratch'");
  TrainConfig z;
  z.init_from = "model.bin", z.zero_init_proj = true;
  EXPECT_ERROR_HAS(validate(z), "init_from = 'model.bin'", "zero_init_proj = True");
  z.init_from = "resume";
  validate(z);
}

// recipe = 'modern' is a preset where it is set: the modern values, which keys after it (in the
// file or later flags) override and which it overrides itself; 'nanogpt' sets GPT-2 and AdamW back.
TEST_F(ConfigTest, RecipePreset) {
  TrainConfig m = load({write("m.py", "recipe = 'modern'\n")});
  EXPECT_TRUE(m.rotary && m.qk_norm && m.zero_init_proj && !m.tie_embeddings);
  EXPECT_EQ(m.norm, "rmsnorm");
  EXPECT_EQ(m.mlp_activation, "relu2");
  EXPECT_EQ(m.logit_softcap, 15.0);
  EXPECT_EQ(m.optimizer, "muon");
  EXPECT_EQ(m.embedding_lr, 0.05);
  EXPECT_EQ(m.head_lr, 0.008);
  validate(m);
  EXPECT_EQ(load({write("back.py", to_python(m))}), m);
  // The advice of the error for a tied head under the recipe: head_lr = None is its default.
  TrainConfig tied =
      load({write("t.py", "recipe = 'modern'\ntie_embeddings = True\nhead_lr = None\n")});
  EXPECT_EQ(tied.head_lr, 0.0);
  validate(tied);
  TrainConfig o = load({write("o.py", "recipe = 'modern'\nrotary = False\n"), "--optimizer=adamw"});
  EXPECT_FALSE(o.rotary);
  EXPECT_EQ(o.optimizer, "adamw");
  EXPECT_TRUE(o.qk_norm);
  TrainConfig before = load({write("b.py", "logit_softcap = 30.0\nrecipe = 'modern'\n")});
  EXPECT_EQ(before.logit_softcap, 15.0);
  TrainConfig back = load({write("m2.py", "recipe = 'modern'\n"), "--recipe=nanogpt"});
  EXPECT_EQ(back, TrainConfig{}); // every key at its default again
  EXPECT_FALSE(back.rotary || back.qk_norm || back.zero_init_proj || !back.tie_embeddings);
  EXPECT_EQ(back.optimizer, "adamw");
  EXPECT_EQ(back.head_lr, 0.0);
  EXPECT_ERROR_HAS(load({write("bad.py", "n_layer = 2\nrecipe = 'speedrun'\n")}), "bad.py:2",
                   "recipe", "'speedrun'", "'modern'");
  EXPECT_ERROR_HAS(load({"--recipe=llama"}), "--recipe", "'llama'");
}

} // namespace
} // namespace finegpt
