// The header must compile as C++ (extern "C", no C-only constructs).
#include "smolvlm.h"
#include <cstdio>

int main() {
    smolvlm_generate_params p;
    smolvlm_generate_params_default(&p);
    std::printf("%s %d %zu\n", smolvlm_version(), p.max_tokens, sizeof(smolvlm_stats));
    return smolvlm_status_str(SMOLVLM_STATUS_OK) ? 0 : 1;
}
