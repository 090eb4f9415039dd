// The server reaching past engine/include.
#include "high/high.h"
#include "engine/api.h"
