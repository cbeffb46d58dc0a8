// Describes an image, streaming the answer, then prints the call's statistics: the C API from
// C++ with RAII handles and a lambda as the streaming callback. Every language's example does the
// same; see examples/README.md.
//
//   c++ -std=c++17 describe.cpp $(pkg-config --cflags --libs smolvlm) -o describe
//   ./describe <model_dir> <image> ["prompt"]
#include "smolvlm.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

struct ModelFree { void operator()(smolvlm_model_t *m) const { smolvlm_model_free(m); } };
struct ContextFree { void operator()(smolvlm_ctx_t *c) const { smolvlm_free(c); } };
struct ImageFree { void operator()(smolvlm_image_t *i) const { smolvlm_image_free(i); } };

void check(smolvlm_status status, const char *what) {
    if (status != SMOLVLM_STATUS_OK)
        throw std::runtime_error(std::string(what) + ": " + smolvlm_last_error());
}

}  // namespace

int main(int argc, char **argv) try {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " <model_dir> <image> [prompt]\n";
        return 2;
    }
    const std::string prompt = argc > 3 ? argv[3] : "Describe this image.";

    smolvlm_model_t *m = nullptr;
    check(smolvlm_model_load(argv[1], nullptr, &m), "load");
    std::unique_ptr<smolvlm_model_t, ModelFree> model(m);
    smolvlm_ctx_t *c = nullptr;
    check(smolvlm_ctx_new(model.get(), &c), "context");
    std::unique_ptr<smolvlm_ctx_t, ContextFree> ctx(c);
    smolvlm_image_t *i = nullptr;
    check(smolvlm_image_from_file(argv[2], &i), "image");
    std::unique_ptr<smolvlm_image_t, ImageFree> image(i);

    auto on_piece = [](const char *piece, size_t len, int32_t, void *) -> bool {
        std::cout.write(piece, static_cast<std::streamsize>(len)).flush();
        return true;
    };
    smolvlm_generate_params params;
    smolvlm_generate_params_default(&params);
    params.max_tokens = 256;
    params.on_piece = on_piece;
    const smolvlm_image_t *images[] = {image.get()};
    check(smolvlm_ctx_generate(ctx.get(), prompt.c_str(), nullptr, images, 1, &params, nullptr), "generate");
    std::cout << std::endl;

    smolvlm_stats s{};
    s.size = sizeof s;
    check(smolvlm_ctx_get_stats(ctx.get(), &s), "stats");
    std::fprintf(stderr, "%d tokens, %.1f tok/s; vision %.0f ms, prompt %d tokens %.0f ms, total %.0f ms\n",
                 s.decode_tokens, s.decode_tokens_per_s, s.encode_ms, s.prefill_tokens, s.prefill_ms, s.total_ms);
    return 0;
} catch (const std::exception &e) {
    std::cerr << e.what() << '\n';
    return 1;
}
