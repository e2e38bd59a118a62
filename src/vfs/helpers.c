// SPDX-License-Identifier: GPL-2.0
/*
 * unionrs: the C that Rust cannot do without. The mount parameter table, which is built
 * from macros, the fs_context callbacks that parse with it (fs_parse() is inline), and
 * one-call wrappers for static inline functions and macros, as the kernel's own
 * rust/helpers/ do. No union logic: every decision is made in Rust (src/), and every
 * prototype is in helpers.h.
 */
#include "helpers.h"

/* The words of the enumerated options (two or three to a line, to keep this file short). */
static const struct constant_table unionrs_param_bool[] = { { "on", 1 }, { "off", 0 }, {} };

static const struct constant_table unionrs_param_redirect_dir[] = {
	{ "off", UNIONRS_REDIRECT_DIR_OFF }, { "follow", UNIONRS_REDIRECT_DIR_FOLLOW },
	{ "nofollow", UNIONRS_REDIRECT_DIR_NOFOLLOW }, { "on", UNIONRS_REDIRECT_DIR_ON }, {}
};

static const struct constant_table unionrs_param_xino[] = {
	{ "off", UNIONRS_XINO_OFF }, { "auto", UNIONRS_XINO_AUTO }, { "on", UNIONRS_XINO_ON }, {}
};

static const struct constant_table unionrs_param_uuid[] = {
	{ "off", UNIONRS_UUID_OFF }, { "null", UNIONRS_UUID_NULL },
	{ "auto", UNIONRS_UUID_AUTO }, { "on", UNIONRS_UUID_ON }, {}
};

static const struct constant_table unionrs_param_verity[] = {
	{ "off", UNIONRS_VERITY_OFF }, { "on", UNIONRS_VERITY_ON },
	{ "require", UNIONRS_VERITY_REQUIRE }, {}
};

static const struct constant_table unionrs_param_fsync[] = {
	{ "volatile", UNIONRS_FSYNC_VOLATILE }, { "auto", UNIONRS_FSYNC_AUTO },
	{ "strict", UNIONRS_FSYNC_STRICT }, {}
};

static const struct fs_parameter_spec unionrs_param_spec[] = {
	fsparam_string_empty("lowerdir", UNIONRS_OPT_LOWERDIR),
	fsparam_file_or_string("lowerdir+", UNIONRS_OPT_LOWERDIR_ADD),
	fsparam_file_or_string("datadir+", UNIONRS_OPT_DATADIR_ADD),
	fsparam_file_or_string("upperdir", UNIONRS_OPT_UPPERDIR),
	fsparam_file_or_string("workdir", UNIONRS_OPT_WORKDIR),
	fsparam_flag("userxattr", UNIONRS_OPT_USERXATTR),
	fsparam_enum("index", UNIONRS_OPT_INDEX, unionrs_param_bool),
	fsparam_enum("metacopy", UNIONRS_OPT_METACOPY, unionrs_param_bool),
	fsparam_enum("nfs_export", UNIONRS_OPT_NFS_EXPORT, unionrs_param_bool),
	fsparam_enum("redirect_dir", UNIONRS_OPT_REDIRECT_DIR, unionrs_param_redirect_dir),
	fsparam_enum("xino", UNIONRS_OPT_XINO, unionrs_param_xino),
	fsparam_enum("uuid", UNIONRS_OPT_UUID, unionrs_param_uuid),
	fsparam_enum("verity", UNIONRS_OPT_VERITY, unionrs_param_verity),
	fsparam_string("whiteout", UNIONRS_OPT_WHITEOUT),
	fsparam_flag("default_permissions", UNIONRS_OPT_DEFAULT_PERMISSIONS),
	fsparam_enum("fsync", UNIONRS_OPT_FSYNC, unionrs_param_fsync),
	fsparam_flag("volatile", UNIONRS_OPT_VOLATILE),
	fsparam_flag_no("override_creds", UNIONRS_OPT_OVERRIDE_CREDS),
	{}
};

/*
 * fs_parse() is inline and the parameter is opaque to Rust: hand Rust the parsed pieces (a
 * flag's number is 0 for its "no" form, else 1).
 */
static int unionrs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct fs_parse_result result;
	int opt = fs_parse(fc, unionrs_param_spec, param, &result);
	bool flag = param->type == fs_value_is_flag;

	if (opt < 0)
		return opt;
	return unionrs_rs_parse_param(fc, fc->fs_private, opt,
				      param->type == fs_value_is_string ? param->string : NULL,
				      param->type == fs_value_is_file ? param->file : NULL,
				      flag ? !result.negated : result.uint_32);
}

static int unionrs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	return unionrs_rs_fill_super(sb, fc, fc->fs_private);
}

static int unionrs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, unionrs_fill_super);
}

static int unionrs_reconfigure(struct fs_context *fc)
{
	return unionrs_rs_reconfigure(fc, fc->fs_private, fc->root->d_sb,
				      !(fc->sb_flags & SB_RDONLY));
}

static void unionrs_free_fc(struct fs_context *fc)
{
	if (fc->fs_private)
		unionrs_rs_fc_free(fc->fs_private);
	fc->fs_private = NULL;
}

static const struct fs_context_operations unionrs_context_ops = {
	.parse_monolithic = unionrs_rs_parse_monolithic,
	.parse_param	  = unionrs_parse_param,
	.get_tree	  = unionrs_get_tree,
	.reconfigure	  = unionrs_reconfigure,
	.free		  = unionrs_free_fc,
};

static int unionrs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = unionrs_rs_fc_alloc();
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &unionrs_context_ops;
	return 0;
}

/* The superblock's private data refers to the layers: it goes after the inodes. */
static void unionrs_kill_sb(struct super_block *sb)
{
	void *info = sb->s_fs_info;

	kill_anon_super(sb);
	if (info)
		unionrs_rs_free_sb_info(info);
}

struct file_system_type unionrs_fs_type = {
	.name		 = "unionrs",
	.init_fs_context = unionrs_init_fs_context,
	.parameters	 = unionrs_param_spec,
	.fs_flags	 = FS_USERNS_MOUNT | FS_ALLOW_IDMAP,
	.kill_sb	 = unionrs_kill_sb,
};

void unionrs_fc_log(struct fs_context *fc, char level, const char *msg)
{
	logfc(fc->log.log, "unionrs", level, "%s", msg);
}

static DEFINE_RATELIMIT_STATE(unionrs_log_ratelimit_state, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

bool unionrs_log_ratelimit(void)
{
	return __ratelimit(&unionrs_log_ratelimit_state);
}

bool unionrs_sb_has_encoding(const struct super_block *sb)
{
	return sb_has_encoding(sb);
}

void unionrs_seq_show_option(struct seq_file *m, const char *name, const char *value)
{
	seq_show_option(m, name, value);
}

const struct cred *unionrs_override_creds(const struct cred *cred)
{
	return override_creds(cred);
}

const struct cred *unionrs_revert_creds(const struct cred *old)
{
	return revert_creds(old);
}

const struct cred *unionrs_current_cred(void)
{
	return current_cred();
}

struct mnt_idmap *unionrs_mnt_idmap(struct vfsmount *mnt)
{
	return mnt_idmap(mnt);
}

bool unionrs_inode_is_new(struct inode *inode)
{
	return inode_state_read_once(inode) & I_NEW;
}

unsigned long unionrs_inode_state_read(struct inode *inode)
{
	return inode_state_read(inode);
}

void unionrs_inode_state_set(struct inode *inode, unsigned long flags)
{
	inode_state_set(inode, flags);
}

void unionrs_inode_state_clear(struct inode *inode, unsigned long flags)
{
	inode_state_clear(inode, flags);
}

void unionrs_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

void unionrs_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

int unionrs_get_write_access(struct inode *inode)
{
	return get_write_access(inode);
}

void unionrs_put_write_access(struct inode *inode)
{
	put_write_access(inode);
}

void unionrs_end_creating(struct dentry *child)
{
	end_creating(child);
}

struct dentry *unionrs_end_creating_keep(struct dentry *child)
{
	return end_creating_keep(child);
}

void unionrs_end_removing(struct dentry *child)
{
	end_removing(child);
}

size_t unionrs_iov_iter_count(const struct iov_iter *iter)
{
	return iov_iter_count(iter);
}

void unionrs_init_sync_kiocb(struct kiocb *kiocb, struct file *file)
{
	init_sync_kiocb(kiocb, file);
}

void unionrs_posix_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}

void unionrs_do_delayed_call(struct delayed_call *call)
{
	do_delayed_call(call);
}

bool unionrs_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

int unionrs_mutex_lock_interruptible(struct mutex *lock)
{
	return mutex_lock_interruptible(lock);
}

int unionrs_security_inode_copy_up_xattr(struct dentry *src, const char *name)
{
	return security_inode_copy_up_xattr(src, name);
}

int unionrs_security_inode_copy_up(struct dentry *src, struct cred **new)
{
	return security_inode_copy_up(src, new);
}

int unionrs_security_dentry_create_files_as(struct dentry *dentry, int mode,
					    const struct cred *old, struct cred *new)
{
	return security_dentry_create_files_as(dentry, mode, &dentry->d_name, old, new);
}

bool unionrs_fsverity_info_loaded(const struct inode *inode)
{
	return fsverity_get_info(inode);
}

bool unionrs_fsverity_active(const struct inode *inode)
{
	return fsverity_active(inode);
}

int unionrs_fsverity_get_digest(struct inode *inode, u8 *digest, u8 *alg)
{
	return fsverity_get_digest(inode, digest, alg, NULL);
}

void unionrs_super_set_uuid(struct super_block *sb, const u8 *uuid)
{
	super_set_uuid(sb, uuid, UUID_SIZE);
}
