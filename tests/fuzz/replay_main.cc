// main() for the fuzz targets when they are not built with libFuzzer (gcc, normal builds):
// runs LLVMFuzzerTestOneInput once over every file named on the command line, directories
// recursively (in sorted order). A crash or abort() in the target fails the process; so does
// an argument that names nothing readable, or an empty corpus (a test that runs nothing).
//
//   fuzz_rewriter tests/fuzz/corpus/fuzz_rewriter          # replay the seeds
//   fuzz_rewriter /tmp/crash-0123abcd                       # replay one input
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A copy in a buffer of exactly the input's size, as libFuzzer does (so reads past the end
  // are caught by the sanitizers when the replay is built with them).
  std::vector<uint8_t> data(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <corpus dir or input file>...\n", argv[0]);
    return 2;
  }
  size_t ran = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        if (run_file(f)) ++ran; else ok = false;
      }
    } else if (std::filesystem::is_regular_file(arg, ec)) {
      if (run_file(arg)) ++ran; else ok = false;
    } else {
      std::fprintf(stderr, "replay: %s is neither a file nor a directory\n", argv[i]);
      ok = false;
    }
  }
  std::printf("replay: %zu input(s) ran without a crash\n", ran);
  if (ran == 0) {
    std::fprintf(stderr, "replay: no inputs\n");
    return 1;
  }
  return ok ? 0 : 1;
}
