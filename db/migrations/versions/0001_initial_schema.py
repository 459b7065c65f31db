"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 12:22:02.557421
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import db.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('sip_uri', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('login', name=op.f('uq_agents_login'))
    )
    op.create_table('companies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('weekly_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('holiday_country', sa.String(length=8), nullable=True),
    sa.Column('holiday_subdivision', sa.String(length=16), nullable=True),
    sa.Column('closures', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('special_days', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies')),
    sa.UniqueConstraint('name', name=op.f('uq_companies_name'))
    )
    op.create_table('job_leases',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('occurrence', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('dial_mode', sa.Enum('preview', 'progressive', 'power', 'predictive', name='dialmode', native_enum=False, length=24), nullable=False),
    sa.Column('lines_per_agent', sa.Float(), nullable=False),
    sa.Column('max_dial_level', sa.Float(), nullable=False),
    sa.Column('max_lines', sa.Integer(), nullable=True),
    sa.Column('caller_id', sa.String(length=32), nullable=False),
    sa.Column('trunk', sa.String(length=64), nullable=True),
    sa.Column('ring_timeout_s', sa.Float(), nullable=False),
    sa.Column('min_ring_s', sa.Float(), nullable=False),
    sa.Column('abandon_cap', sa.Float(), nullable=False),
    sa.Column('abandon_window', sa.Enum('rolling_30d', 'rolling_24h', 'calendar_day', name='abandonwindow', native_enum=False, length=24), nullable=False),
    sa.Column('abandon_grace_s', sa.Float(), nullable=False),
    sa.Column('abandon_clock_start', sa.Enum('answer', 'greeting_start', 'greeting_end', name='abandonclockstart', native_enum=False, length=24), nullable=False),
    sa.Column('amd_enabled', sa.Boolean(), nullable=False),
    sa.Column('amd_max_ms', sa.Integer(), nullable=False),
    sa.Column('machine_policy', sa.Enum('hang_up', 'leave_message', 'treat_as_human', name='machinepolicy', native_enum=False, length=24), nullable=False),
    sa.Column('message_wav', sa.String(length=500), nullable=True),
    sa.Column('record_calls', sa.Boolean(), nullable=False),
    sa.Column('calling_window', sa.String(length=32), nullable=False),
    sa.Column('default_region', sa.String(length=2), nullable=False),
    sa.Column('callback_grace_s', sa.Float(), nullable=False),
    sa.Column('retry_rules', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('dispositions', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('script', sa.Text(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_campaigns_company_id_companies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    op.create_table('abandon_rollups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('window', sa.String(length=16), nullable=False),
    sa.Column('computed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('live', sa.Integer(), nullable=False),
    sa.Column('abandoned', sa.Integer(), nullable=False),
    sa.Column('rate', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_abandon_rollups_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_abandon_rollups'))
    )
    with op.batch_alter_table('abandon_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_abandon_rollups_key', ['campaign_id', 'window', 'computed_at'], unique=False)

    op.create_table('agent_state_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('logged_out', 'ready', 'reserved', 'talking', 'wrap_up', 'paused', name='agentstate', native_enum=False, length=24), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('started_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_state_log_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_agent_state_log_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_state_log'))
    )
    with op.batch_alter_table('agent_state_log', schema=None) as batch_op:
        batch_op.create_index('ix_agent_state_log_agent_started', ['agent_id', 'started_at'], unique=False)

    op.create_table('daily_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('plan_date', sa.Date(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('built_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_daily_plans_agent_id_agents')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_daily_plans_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_plans')),
    sa.UniqueConstraint('campaign_id', 'agent_id', 'plan_date', name='uq_daily_plans_key')
    )
    op.create_table('daily_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_date', sa.Date(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('planned', sa.Integer(), nullable=False),
    sa.Column('called', sa.Integer(), nullable=False),
    sa.Column('reached', sa.Integer(), nullable=False),
    sa.Column('meetings', sa.Integer(), nullable=False),
    sa.Column('contracts', sa.Integer(), nullable=False),
    sa.Column('callbacks', sa.Integer(), nullable=False),
    sa.Column('talk_s', sa.Float(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_daily_reports_agent_id_agents')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_daily_reports_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_reports')),
    sa.UniqueConstraint('report_date', 'campaign_id', 'agent_id', name='uq_daily_reports_key')
    )
    op.create_table('leads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Enum('potential', 'hot', 'served', 'done', 'exhausted', 'dnc', 'invalid', name='leadstatus', native_enum=False, length=24), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('hopper_tier', sa.Integer(), nullable=False),
    sa.Column('has_open_complaint', sa.Boolean(), nullable=False),
    sa.Column('next_contact_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_call_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('never_reason', sa.String(length=200), nullable=True),
    sa.Column('owner_agent_id', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_result', sa.Enum('connected', 'abandoned', 'machine', 'busy', 'no_answer', 'invalid_number', 'rejected', 'failed', 'cancelled', 'lost', 'skipped', name='attemptresult', native_enum=False, length=24), nullable=True),
    sa.Column('last_attempt_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_abandoned_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_until', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_leads_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_leads_company_id_companies')),
    sa.ForeignKeyConstraint(['owner_agent_id'], ['agents.id'], name=op.f('fk_leads_owner_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads')),
    sa.UniqueConstraint('campaign_id', 'phone_e164', name='uq_leads_campaign_phone')
    )
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_index('ix_leads_claim', ['claimed_until'], unique=False)
        batch_op.create_index('ix_leads_hopper', ['campaign_id', 'hopper_tier', sa.literal_column('priority DESC'), 'next_call_at'], unique=False)
        batch_op.create_index('ix_leads_next_call', ['campaign_id', 'next_call_at'], unique=False)

    op.create_table('attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('dial_mode', sa.Enum('preview', 'progressive', 'power', 'predictive', name='dialmode', native_enum=False, length=24), nullable=False),
    sa.Column('dialer_id', sa.String(length=64), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=True),
    sa.Column('trunk', sa.String(length=64), nullable=True),
    sa.Column('stage', sa.Enum('created', 'dialing', 'ringing', 'answered', 'bridged', 'message', 'ended', name='attemptstage', native_enum=False, length=24), nullable=False),
    sa.Column('result', sa.Enum('connected', 'abandoned', 'machine', 'busy', 'no_answer', 'invalid_number', 'rejected', 'failed', 'cancelled', 'lost', 'skipped', name='attemptresult', native_enum=False, length=24), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dialing_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ringing_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('amd_done_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bridged_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('message_started_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('wrapup_ended_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sip_code', sa.Integer(), nullable=True),
    sa.Column('sip_reason', sa.String(length=200), nullable=True),
    sa.Column('hangup_by', sa.String(length=16), nullable=True),
    sa.Column('amd_verdict', sa.Enum('human', 'machine', 'unknown', 'not_run', name='amdverdict', native_enum=False, length=24), nullable=False),
    sa.Column('amd_ms', sa.Integer(), nullable=True),
    sa.Column('abandoned', sa.Boolean(), nullable=False),
    sa.Column('bridge_latency_ms', sa.Float(), nullable=True),
    sa.Column('ring_s', sa.Float(), nullable=True),
    sa.Column('talk_s', sa.Float(), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('disposition', sa.String(length=64), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('next_contact_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recording_path', sa.String(length=500), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_attempts_agent_id_agents')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_attempts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_attempts_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attempts'))
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_agent_created', ['agent_id', 'created_at'], unique=False)
        batch_op.create_index('ix_attempts_campaign_created', ['campaign_id', 'created_at'], unique=False)
        batch_op.create_index('ix_attempts_lead', ['lead_id'], unique=False)
        batch_op.create_index('ix_attempts_open', ['stage'], unique=False)

    op.create_table('daily_plan_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('due_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_daily_plan_items_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['plan_id'], ['daily_plans.id'], name=op.f('fk_daily_plan_items_plan_id_daily_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_plan_items'))
    )
    op.create_table('callbacks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.Enum('agent', 'campaign', name='callbackscope', native_enum=False, length=24), nullable=False),
    sa.Column('owner_agent_id', sa.Integer(), nullable=True),
    sa.Column('due_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('reminded_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], name=op.f('fk_callbacks_attempt_id_attempts')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_callbacks_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_callbacks_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_agent_id'], ['agents.id'], name=op.f('fk_callbacks_owner_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callbacks'))
    )
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.create_index('ix_callbacks_due', ['campaign_id', 'status', 'due_at'], unique=False)

    op.create_table('dnc_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('added_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], name=op.f('fk_dnc_entries_attempt_id_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dnc_entries')),
    sa.UniqueConstraint('phone_e164', 'source', name='uq_dnc_phone_source')
    )
    with op.batch_alter_table('dnc_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dnc_entries_phone_e164'), ['phone_e164'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('dnc_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dnc_entries_phone_e164'))

    op.drop_table('dnc_entries')
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_index('ix_callbacks_due')

    op.drop_table('callbacks')
    op.drop_table('daily_plan_items')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_attempts_open')
        batch_op.drop_index('ix_attempts_lead')
        batch_op.drop_index('ix_attempts_campaign_created')
        batch_op.drop_index('ix_attempts_agent_created')

    op.drop_table('attempts')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_next_call')
        batch_op.drop_index('ix_leads_hopper')
        batch_op.drop_index('ix_leads_claim')

    op.drop_table('leads')
    op.drop_table('daily_reports')
    op.drop_table('daily_plans')
    with op.batch_alter_table('agent_state_log', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_state_log_agent_started')

    op.drop_table('agent_state_log')
    with op.batch_alter_table('abandon_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_abandon_rollups_key')

    op.drop_table('abandon_rollups')
    op.drop_table('campaigns')
    op.drop_table('job_leases')
    op.drop_table('companies')
    op.drop_table('agents')
