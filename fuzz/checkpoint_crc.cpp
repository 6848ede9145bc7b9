// The checkpoint target with the CRC trailer made to match (see checkpoint.cpp).
#define FINEGPT_FUZZ_FIX_CRC 1
#include "checkpoint.cpp"
