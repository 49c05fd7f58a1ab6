// The building blocks of the Qwen3 families, each with its own options (nn/ does not know model/).
#pragma once
#include "gym/nn/attention.h"
#include "gym/nn/cache.h"
#include "gym/nn/gated_delta_net.h"
#include "gym/nn/linear.h"
#include "gym/nn/moe.h"
#include "gym/nn/norm.h"
#include "gym/nn/rope.h"
