# The Makefile rule for the Rust static library that `config` names. cargo
# decides what needs rebuilding, so make always runs it.

cat << END                                                >> $NGX_MAKEFILE

.PHONY: $ngx_mqtt_lib

$ngx_mqtt_lib:
	$ngx_mqtt_addon_dir/scripts/build-module.sh --tree $ngx_mqtt_tree \\
		--objs $ngx_mqtt_objs --target-dir $ngx_mqtt_target_dir \\
		--profile $ngx_mqtt_profile

END
