// The header's inline functions are all there is; a C target needs one source file.
#include "CBenchSupport.h"
