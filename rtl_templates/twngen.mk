# twngen Makefile fragment: include it in your build flow's Makefile.
#
#   TWNGEN_MODEL := nets/classifier.onnx
#   TWNGEN_BOARD := zcu111
#   TWNGEN_OUT   := build/classifier
#   TWNGEN_FLAGS := --clock-mhz 300
#   include twngen.mk                  # `twngen make-fragment > twngen.mk`
#   my_bitstream: $(TWNGEN_RTL)
#
# The RTL is rebuilt exactly when the model, the files twngen read (listed in
# the depfile it writes, $(TWNGEN_OUT)/twn_top.d) or the twngen command line
# change; otherwise make leaves it alone.

TWNGEN       ?= twngen
TWNGEN_BOARD ?= zcu111
TWNGEN_OUT   ?= build/$(basename $(notdir $(TWNGEN_MODEL)))
TWNGEN_FLAGS ?=
TWNGEN_RTL   := $(TWNGEN_OUT)/rtl/twn_top.v

_twngen_cmd   := $(TWNGEN) $(TWNGEN_MODEL) --board $(TWNGEN_BOARD) -o $(TWNGEN_OUT) $(TWNGEN_FLAGS)
_twngen_stamp := $(TWNGEN_OUT).cmd
# Rewrite the stamp only when the command line changed, so its date says when.
_twngen_dummy := $(shell mkdir -p $(dir $(_twngen_stamp)) && \
  (printf '%s\n' '$(_twngen_cmd)' | cmp -s - $(_twngen_stamp) || printf '%s\n' '$(_twngen_cmd)' > $(_twngen_stamp)))

$(TWNGEN_RTL): $(TWNGEN_MODEL) $(_twngen_stamp)
	$(_twngen_cmd)

-include $(TWNGEN_OUT)/twn_top.d

.PHONY: twngen-rtl
twngen-rtl: $(TWNGEN_RTL)
